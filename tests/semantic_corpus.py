# ruff: noqa: E501  (the subject tables below keep one subject per line)
"""Web-like English pages with planted paraphrases and exact ground truth, for semantic dedup tests.

`paraphrase_corpus` writes pages of six kinds of site (product pages, local news briefs, recipes,
local business pages, how-to guides, forum questions), 60-200 words each, offline and seeded, from
the templates and word lists in this file. A page is a title and blocks: prose sentences, lists
(features, ingredients, services...) and numbered steps. Every template sentence, and every longer
phrase of a subject (a product, a news event, a dish...), has two or three phrasings that say the
same thing. Each original has exactly one duplicate, of one kind:

- "copy": the same text, byte for byte;
- "reorder": the same sentences, list items and blocks in another order (numbered steps keep
  theirs, since their order is their meaning; the title stays first);
- "synonym": every sentence said in another of its phrasings, then about half of the common words
  found in `SYNONYMS` swapped for a synonym: the same facts in other words;
- "template": the same page with its names, places and numbers changed (a chain's page for another
  town, a product page for another brand and model, a news item filed for another town, a recipe
  reposted by another cook, a forum question from another user about another device);
  the phrasing and the rest of the content stay.

"unrelated" documents come from the same six templates with subjects that no other document uses:
pages of the same site kinds and boilerplate as the originals, about other things.

Ground truth: `group` is the id of the source document (a document's own id for originals and
unrelated ones), `kind` one of `KINDS`, `topic` one of `TOPICS`. Each original comes before its
duplicate in the corpus order, so a keep-the-first rule keeps the original.

MinHash word 5-gram Jaccard to the original (seeds 0-2; `MinHashConfig()` maps every digit run to
"0", so changed numbers alone change nothing): synonym at most 0.13; reorder 0.33-0.88, median 0.54
(the 5-grams inside a sentence stay, those across sentence and list-item boundaries go); template
0.39-0.88, median 0.70 (the boilerplate stays and each changed name removes up to five 5-grams: news
and shop pages, full of names, sit near 0.5, recipes and how-tos, with an author and a site, near 0.8).
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Sequence

KINDS = ("original", "copy", "reorder", "synonym", "template", "unrelated")
DUPLICATE_KINDS = ("copy", "reorder", "synonym", "template")
PARAPHRASE_KINDS = ("reorder", "synonym", "template")
SYNONYM_SWAP = 0.5
"""Chance that a word found in `SYNONYMS` is swapped, in a "synonym" duplicate."""

# ---------------------------------------------------------------------------------------------
# Names, places and numbers (what a "template" duplicate changes)
# ---------------------------------------------------------------------------------------------

TOWNS = (
    "Ashford", "Bellmont", "Brookfield", "Cedar Falls", "Clearwater", "Dunmore", "Eastwick", "Fairview",
    "Glenwood", "Granite Bay", "Hartwell", "Hillsdale", "Kingsport", "Lakeside", "Linden", "Maple Grove",
    "Marlow", "Millbrook", "Newhaven", "Northfield", "Oakridge", "Pinecrest", "Ridgeway", "Riverton",
    "Rockport", "Rosedale", "Sandown", "Silverton", "Southport", "Springdale", "Stonebridge",
    "Summerville", "Thornbury", "Westfield", "Whitby", "Willow Creek", "Woodbury", "Alder Bay",
)  # fmt: skip
STREETS = (
    "Main Street", "Maple Avenue", "Oak Street", "Elm Street", "Church Road", "Mill Lane", "Park Avenue",
    "High Street", "Station Road", "River Road", "Cedar Lane", "Market Street", "Bridge Street",
    "Lincoln Avenue", "Washington Street", "Pine Street", "Chestnut Drive", "Harbor Road", "Orchard Way",
)  # fmt: skip
FIRST_NAMES = (
    "Anna", "Ben", "Carlos", "Diane", "Emma", "Farid", "Grace", "Hannah", "Ian", "Julia", "Kevin", "Laura",
    "Marco", "Nina", "Omar", "Priya", "Rachel", "Sam", "Tara", "Victor", "Wendy", "Yusuf", "Zoe", "Daniel",
    "Elena", "Mei", "Tom", "Lucy", "Raj", "Helen", "Jonas", "Aisha", "Pedro", "Claire", "Mateo", "Ingrid",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Baker", "Chen", "Duarte", "Evans", "Fischer", "Garcia", "Hughes", "Ibrahim", "Jensen",
    "Kowalski", "Lopez", "Murphy", "Nakamura", "Okafor", "Patel", "Reyes", "Schmidt", "Thompson", "Usman",
    "Varga", "Walsh", "Young", "Zimmerman", "Novak", "Brennan", "Holt", "Larsen", "Moreau", "Costa",
)  # fmt: skip
BRANDS = (
    "Norvik", "Altura", "Brightline", "Cobalt", "Duneway", "Everpeak", "Fenwick", "Halcyon", "Ironleaf",
    "Juniper", "Kestrel", "Lumen", "Meridian", "Northstar", "Orion", "Pinnacle", "Quartz", "Redwood",
    "Solace", "Tundra", "Vantage", "Zephyr", "Arden", "Calder",
)  # fmt: skip
COLOURS = (
    "charcoal grey", "midnight blue", "forest green", "matte black", "arctic white", "sand beige",
    "burgundy red", "slate blue", "sage green", "copper brown",
)  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
SHOP_PREFIXES = (
    "Bright", "Greenway", "Blue Door", "Corner", "Oak Tree", "Summit", "Harbour", "Sunrise", "Golden",
    "Riverside", "Hilltop", "Northgate", "Ivy", "Lighthouse", "Kingfisher", "Meadow", "Beacon", "Cornerstone",
)  # fmt: skip
SITE_WORDS = ("Kitchen", "Table", "Workshop", "Corner", "Notebook", "Pantry", "Toolbox", "Porch", "Journal")
HANDLES = ("hikes", "bakes", "rides", "fixes", "grows", "tinkers", "codes", "runs", "knits", "paints")
REVIEWS = (
    "Does exactly what it says and feels really solid.",
    "Best purchase I have made this year.",
    "Good value for the price, and delivery was quick.",
    "I was unsure at first, but now I use it every day.",
    "Well made and easy to set up.",
    "Bought one for my sister too.",
)

# ---------------------------------------------------------------------------------------------
# Subjects: one row each, the subject's own facts. "a|b" is one phrase said two ways.
# ---------------------------------------------------------------------------------------------

# (product, what it is made for, features, a detail)
PRODUCTS = (
    ("cordless drill", "home repairs and furniture assembly", "brushless motor;two-speed gearbox;built-in LED work light;keyless chuck;two batteries included", "It drives long screws into hardwood without stalling.|Even long screws in hardwood will not make it stall."),
    ("stand mixer", "bread dough, cakes and meringues", "ten speed settings;five-litre steel bowl;dough hook, whisk and flat beater;pouring shield;tilt-back head", "The motor kneads stiff dough for ten minutes without overheating.|You can knead heavy dough for ten minutes and the motor stays cool."),
    ("noise-cancelling headset", "long flights and open-plan offices", "adaptive noise cancelling;30 hours of battery life;foldable design;built-in microphone for calls;quick charge over USB-C", "Ten minutes on the charger gives you five more hours of music.|A ten-minute charge is enough for another five hours of listening."),
    ("robot vacuum", "homes with pets and hard floors", "laser room mapping;automatic dirt disposal base;no-go zones in the app;quiet night mode;climbs rugs and thresholds", "It learns the layout of each room and cleans in neat rows.|After one run it knows every room and sweeps them in tidy lines."),
    ("hiking backpack", "day hikes and weekend treks", "40-litre main compartment;ventilated back panel;rain cover in the base;hip belt pockets;hydration sleeve", "The frame keeps the weight on your hips, so your shoulders stay fresh.|Its frame moves the load onto your hips and spares your shoulders."),
    ("electric kettle", "tea lovers and busy kitchens", "variable temperature control;keep-warm function;1.7-litre capacity;auto shut-off;limescale filter", "It brings a full jug to the boil in about three minutes.|A full kettle boils in roughly three minutes."),
    ("office chair", "long working days at a desk", "adjustable lumbar support;breathable mesh back;4D armrests;seat depth adjustment;smooth-rolling casters", "The backrest follows your spine as you lean back and sit up again.|As you recline and return, the back moves with your spine."),
    ("yoga mat", "yoga, pilates and home workouts", "non-slip textured surface;six millimetres of cushioning;carry strap;free of PVC;alignment lines", "It stays put on wooden floors even during hot yoga.|Even in a hot yoga class it will not slide on a wooden floor."),
    ("air fryer", "quick weeknight dinners", "5.5-litre basket;eight cooking presets;dishwasher-safe parts;shake reminder;viewing window", "Chips come out crisp with a spoonful of oil instead of a pan full.|One spoon of oil is enough for crunchy chips, no deep pan needed."),
    ("espresso machine", "coffee lovers who want cafe drinks at home", "15-bar pump;built-in conical grinder;steam wand for milk;pressure gauge;removable water tank", "It grinds fresh beans for every shot, right before brewing.|Beans are ground fresh for each shot just before the water runs through."),
    ("mechanical keyboard", "programmers and gamers", "hot-swappable switches;per-key RGB lighting;aluminium frame;detachable USB-C cable;programmable macros", "Swap the switches without soldering to change how every key feels.|You can change the switches by hand, no soldering, to get the typing feel you like."),
    ("portable speaker", "beach days, picnics and parties", "waterproof to IP67;twelve-hour battery;pairs with a second speaker;built-in power bank;floats in water", "Drop it in the pool and it keeps playing.|It survives a fall into the pool and carries on playing."),
    ("camping tent", "family camping trips", "sleeps four;pitches in five minutes;full rain fly;two doors and two porches;blackout bedroom", "Colour-coded poles make it easy to pitch, even in the dark.|The poles are colour coded, so setting it up is simple even at night."),
    ("smartwatch", "runners and anyone tracking their health", "built-in GPS;heart rate and sleep tracking;seven-day battery;swim-proof case;contactless payments", "It maps your runs without carrying a phone.|Leave the phone at home: it records your route on its own."),
    ("baby stroller", "city walks and travel", "one-hand fold;all-terrain wheels;reclining seat;large shopping basket;fits in an overhead locker", "It folds with one hand while you hold the baby in the other.|You can collapse it with one hand and keep the baby in your other arm."),
    ("electric toothbrush", "a dentist-clean feeling every day", "three brushing modes;pressure sensor;two-minute timer;travel case;three-week battery", "A light warns you when you press too hard on your gums.|If you brush too hard, a warning light comes on to protect your gums."),
    ("dehumidifier", "damp basements and laundry rooms", "removes 20 litres a day;continuous drain hose;humidity display;laundry mode;auto restart after power cuts", "It dries washing indoors in a few hours.|Indoor laundry dries in just a few hours with it running."),
    ("cast iron skillet", "searing, frying and oven baking", "pre-seasoned surface;26-centimetre cooking area;helper handle;oven safe;works on induction", "It holds heat so steaks get a deep brown crust.|The heavy iron keeps its heat and gives steaks a dark, even crust."),
    ("gaming monitor", "fast-paced games and streaming", "27-inch IPS panel;165 Hz refresh rate;1 ms response time;adaptive sync;height-adjustable stand", "Fast motion stays sharp with no tearing or ghosting.|Quick action looks crisp, without tearing or blur trails."),
    ("countertop blender", "smoothies, soups and nut butters", "1,200-watt motor;two-litre jar;pulse and ice-crush settings;self-cleaning program;tamper included", "It turns frozen fruit into a smooth drink in under a minute.|Frozen fruit becomes a silky smoothie in less than a minute."),
    ("hair dryer", "quick styling without heat damage", "ionic technology;three heat settings;cool shot button;concentrator and diffuser;lightweight body", "It dries thick hair in half the usual time.|Thick hair dries in about half as long as usual."),
    ("rice cooker", "perfect rice, porridge and steamed vegetables", "fuzzy logic cooking;non-stick inner pot;steaming basket;delay timer;keep-warm for 12 hours", "Set it in the morning and come home to fluffy rice.|Program it before work and fluffy rice is waiting when you get home."),
    ("electric scooter", "short commutes around town", "25-kilometre range;top speed of 25 km/h;folds in three seconds;puncture-proof tyres;front and rear lights", "It folds small enough to carry onto a bus or train.|Folded, it is compact enough to take on the bus or the train."),
    ("sleeping bag", "cold nights in the mountains", "comfort rating down to minus five degrees;water-resistant shell;draft collar;compression sack;two-way zip", "It packs down to the size of a loaf of bread.|Compressed, it is no bigger than a loaf of bread."),
    ("standing desk", "home offices", "dual motors;memory presets for four heights;anti-collision sensor;cable tray;bamboo top", "It moves from sitting to standing height in about fifteen seconds.|Going from sitting to standing takes roughly fifteen seconds."),
    ("dash cam", "drivers who want a record of every trip", "4K front camera;night vision;parking mode;built-in GPS;loop recording", "If someone bumps your parked car, it saves the clip automatically.|A bump while you are parked triggers an automatic recording."),
    ("water filter jug", "cleaner-tasting tap water", "2.4-litre capacity;filter change indicator;reduces chlorine and limescale;fits in a fridge door;BPA-free plastic", "Each filter cartridge lasts about a month of daily use.|One cartridge covers around four weeks of everyday use."),
    ("children's bike", "kids aged five to eight learning to ride", "20-inch wheels;light aluminium frame;easy-reach brakes;removable stabilisers;chain guard", "It weighs less than most bikes this size, so children can handle it.|Lighter than most bikes of its size, it is easy for a child to control."),
    ("memory foam pillow", "side and back sleepers", "contoured shape;cooling gel layer;washable bamboo cover;medium-firm support;hypoallergenic filling", "The curve supports your neck and keeps your spine in line.|Its shape cradles the neck so your spine stays straight."),
    ("pressure washer", "patios, cars and garden furniture", "140 bar of pressure;eight-metre hose;patio cleaner attachment;detergent tank;hose reel", "It lifts years of moss from paving in an afternoon.|One afternoon is enough to blast years of moss off a patio."),
    ("e-reader", "reading anywhere, even in bright sun", "glare-free 7-inch screen;adjustable warm light;weeks of battery;waterproof;holds thousands of books", "The screen looks like paper, even outside at noon.|Even in midday sun, the display reads like printed paper."),
    ("cordless leaf blower", "clearing leaves from lawns and driveways", "40-volt battery;variable speed trigger;turbo boost;weighs 2.5 kilograms;quiet motor", "It clears a driveway of wet leaves in minutes.|Wet leaves on a driveway are gone within minutes."),
    ("food processor", "chopping, slicing and kneading", "3.2-litre bowl;mini chopping bowl;slicing and grating discs;dough blade;pulse control", "It shreds a head of cabbage for coleslaw in seconds.|A whole cabbage is shredded for coleslaw in a few seconds."),
    ("instant camera", "parties, weddings and travel", "prints photos in 90 seconds;automatic exposure;selfie mirror;built-in flash;close-up lens", "Every shot prints in your hand, ready to share.|Each photo comes out printed, ready to hand to a friend."),
    ("ceiling fan", "bedrooms and living rooms", "five blades;quiet DC motor;dimmable LED light;remote control;reverse mode for winter", "It uses less power than a light bulb on its lowest speed.|On the lowest setting it draws less power than a single bulb."),
    ("winter parka", "harsh winters and city commutes", "down insulation;waterproof shell;fur-free hood;fleece-lined pockets;two-way zip", "It keeps you warm at minus twenty while staying light.|Warm down to minus twenty degrees, yet still light to wear."),
    ("orthopedic dog bed", "older dogs and dogs with joint pain", "memory foam base;raised bolsters;removable washable cover;non-slip bottom;waterproof liner", "The foam takes pressure off stiff hips and elbows.|Stiff joints and hips get relief from the supportive foam."),
    ("3D printer", "hobbyists and small workshops", "auto bed levelling;heated build plate;direct drive extruder;touch screen;prints PLA, PETG and TPU", "It comes almost fully assembled and prints within twenty minutes of unboxing.|Mostly assembled in the box, it is printing twenty minutes after you open it."),
    ("sewing machine", "beginners and quilters", "60 built-in stitches;automatic needle threader;one-step buttonhole;free arm;LED sewing light", "Threading the needle takes one lever instead of squinting.|A single lever threads the needle, so there is no squinting."),
    ("air purifier", "allergy sufferers and smoky cities", "true HEPA filter;activated carbon layer;air quality sensor;sleep mode;cleans rooms up to 40 square metres", "It removes pollen, dust and smoke while you sleep.|Pollen, dust and smoke are filtered out overnight."),
)  # fmt: skip

# (headline, what happened, the impact, the official's role, a quote, what comes next, range of {n})
NEWS = (
    ("Water main break leaves {n} homes in {town} without water", "A water main burst under {street} early on {day}.|Early on {day}, a pipe carrying drinking water broke beneath {street}.", "About {n} households lost running water and two schools closed for the day.|Roughly {n} homes had no tap water, and two schools shut their doors.", "utilities director", "Crews have worked through the night and we expect service back by tomorrow evening|Our crews were out all night, and water should be flowing again tomorrow evening", "Residents are asked to boil tap water until further notice.|Until told otherwise, people should boil water from the tap.", (300, 4000)),
    ("{town} library reopens after ${money} renovation", "The public library on {street} reopened its doors on {day} after an 18-month renovation.|After eighteen months of building work, the library on {street} welcomed readers back on {day}.", "The new building has a children's wing, a maker space and {n} more seats for study.|Inside there is a wing for children, a maker space and room for {n} extra people to study.", "head librarian", "We wanted a place where everyone in town feels welcome, from toddlers to retirees|Our goal was a building that welcomes the whole town, from toddlers to pensioners", "Opening hours will be extended to 9 p.m. on weekdays starting next month.|From next month, the library will stay open until 9 p.m. on weekdays.", (40, 150)),
    ("Bridge on {street} to close for three months of repairs", "The bridge carrying {street} over the river will close to traffic from {day}.|Starting {day}, drivers will no longer be able to cross the river on the {street} bridge.", "Engineers found corroded steel beams during a routine inspection, and about {n} vehicles a day will need to detour.|A routine inspection found rusting steel beams; around {n} cars a day must now take another route.", "public works director", "The bridge is not in danger of collapse, but we cannot wait until it is|There is no risk of the bridge falling down, but we are not going to wait for that", "Pedestrians and cyclists can still use a temporary walkway on the north side.|People on foot or on bikes may keep using a temporary path along the north side.", (2000, 15000)),
    ("School board votes to push back start times in {town}", "The {town} school board voted 5 to 2 on {day} to start high school classes at 8:30 a.m.|On {day}, board members in {town} approved, by five votes to two, a later 8:30 a.m. start for high schools.", "The change affects about {n} students and follows research linking early starts to poor sleep.|Some {n} pupils will be affected; the move follows studies tying early classes to lack of sleep.", "superintendent", "Our teenagers will be more rested and more ready to learn|Students who get more sleep come to class more alert and ready to learn", "Bus schedules will be redrawn over the summer before the new timetable begins in September.|Over the summer the district will rework its bus routes, and the new timetable starts in September.", (1500, 9000)),
    ("Wildfire near {town} forces evacuations", "A fast-moving wildfire broke out in the hills east of {town} on {day} afternoon.|On {day} afternoon, a wildfire started in the hills to the east of {town} and spread quickly.", "Around {n} residents were told to leave their homes as strong winds pushed the flames toward houses.|Strong winds drove the fire toward homes, and about {n} people were ordered to evacuate.", "fire chief", "Our crews are making progress, but the wind is not on our side tonight|We are gaining ground, though tonight the wind is working against us", "An emergency shelter has opened at the high school gym.|The high school gym is now serving as an emergency shelter.", (500, 6000)),
    ("Factory in {town} to cut {n} jobs", "A packaging plant on the edge of {town} announced on {day} that it will cut {n} jobs by the end of the year.|On {day}, the packaging factory outside {town} said {n} jobs will be lost before the year ends.", "The company blamed falling orders and rising energy prices.|Management pointed to fewer orders and higher energy bills.", "mayor", "This is a hard day for the families who depend on these jobs|These families rely on those paychecks, and today is a painful day for them", "The state labour office will hold a job fair for affected workers next week.|Next week, the state employment office plans a job fair for the workers who are losing their jobs.", (60, 400)),
    ("Record crowd runs the {town} marathon", "More than {n} runners took part in the {town} marathon on {day}, the largest field in the race's history.|The {town} marathon drew over {n} runners on {day}, its biggest field ever.", "The winner crossed the line in two hours and fourteen minutes, a new course record.|A course record fell as the winner finished in 2 hours 14 minutes.", "race director", "The weather was perfect and the crowds along the route were incredible|We had ideal weather and amazing crowds all along the course", "Roads closed for the race reopened by mid-afternoon.|By the middle of the afternoon, all roads shut for the race had reopened.", (3000, 12000)),
    ("Power outage hits {n} customers in {town}", "A fallen tree brought down power lines on {street} late on {day}.|Late on {day}, a tree came down on the power lines along {street}.", "Around {n} homes and businesses were left in the dark, and traffic lights failed at several junctions.|Some {n} customers lost electricity and traffic signals stopped working at several crossings.", "utility spokesperson", "Our line crews are on site and most customers should have power back by morning|Repair crews are already there, and most people should be reconnected by the morning", "Drivers are urged to treat dark traffic lights as four-way stops.|Motorists should treat any traffic light that is out as a four-way stop.", (800, 9000)),
    ("Bus fares in {town} to rise next month", "The {town} transit authority approved a fare increase on {day}, raising a single ride from $2.25 to $2.75.|On {day}, transit officials in {town} voted to raise the price of a single trip from $2.25 to $2.75.", "The authority says the increase will cover a budget gap of ${money}.|According to the agency, the higher fares will close a ${money} hole in its budget.", "transit authority chair", "Nobody likes paying more, but the alternative was cutting routes|No one wants higher fares, yet the other option was to cut bus lines", "Monthly passes for students and seniors will keep their current price.|Students and seniors will pay the same as before for monthly passes.", (1, 2)),
    ("New bike lanes planned for {street}", "City council in {town} approved plans on {day} for protected bike lanes along {street}.|On {day}, {town}'s council backed a plan to build protected cycle lanes on {street}.", "The project will remove {n} parking spaces and add planters between cyclists and traffic.|It will take away {n} parking spots and place planters to separate bikes from cars.", "transportation planner", "Safer streets for cyclists mean safer streets for everyone|When the street is safe for cyclists, it is safer for all of us", "Construction is scheduled to begin in the spring.|Work should start in the spring.", (20, 120)),
    ("Hospital in {town} breaks ground on new wing", "Officials broke ground on {day} on a new emergency wing at {town} General Hospital.|On {day}, construction began on an emergency wing at {town} General Hospital.", "The ${money} expansion will add {n} treatment rooms and cut waiting times.|The project costs ${money}, adds {n} treatment rooms, and should shorten waits.", "hospital chief executive", "Our emergency department was built for a town half this size|The current emergency room was designed for a town half as big", "The new wing is expected to open in two years.|It should be ready in about two years.", (12, 60)),
    ("{town} farmers market returns for the season", "The farmers market on {street} opened for the season on {day} with more than {n} stalls.|On {day}, the seasonal farmers market returned to {street} with over {n} vendors.", "Shoppers found early strawberries, fresh bread, honey and local cheese.|Stalls offered the first strawberries, fresh loaves, honey and cheese from nearby farms.", "market manager", "We have more local growers this year than ever before|There are more local farmers with us this year than at any time before", "The market runs every Saturday from 8 a.m. to 1 p.m. until October.|It will be open Saturdays, 8 a.m. to 1 p.m., through October.", (30, 90)),
    ("Police arrest suspect in {town} burglaries", "Police in {town} arrested a 34-year-old man on {day} in connection with a string of break-ins.|On {day}, {town} police took a 34-year-old man into custody over a series of burglaries.", "Officers say {n} homes on and around {street} were targeted over the past two months.|According to officers, thieves hit {n} houses near {street} during the last two months.", "police chief", "Tips from neighbours were key to solving this case|Information from residents was what cracked this case", "Residents who believe their property was recovered can contact the station.|Anyone who thinks their stolen items were found can get in touch with the police station.", (8, 30)),
    ("Heat wave: {town} opens cooling centres", "With temperatures expected to reach 38 degrees, {town} opened cooling centres on {day}.|{town} opened cooling centres on {day}, as forecasters predicted highs of 38 degrees.", "Libraries and community centres will stay open late, and {n} bottles of water have been handed out.|Community centres and libraries are keeping longer hours, and {n} water bottles have been given away.", "emergency management coordinator", "Check on elderly neighbours and never leave pets or children in a parked car|Please look in on older neighbours, and never leave children or animals in a parked car", "The heat is expected to ease by the weekend.|Forecasters expect cooler air by the weekend.", (2000, 20000)),
    ("Local startup in {town} raises ${money}", "A {town} software company that helps farmers track soil moisture announced on {day} that it has raised ${money} from investors.|On {day}, a software firm from {town} that lets farmers monitor soil moisture said it had secured ${money} in funding.", "The company plans to hire {n} people over the next year.|It intends to add {n} employees in the coming year.", "company founder", "Farmers can save water and money when they know exactly what their fields need|When growers know exactly what each field needs, they save both water and money", "The firm will move into a larger office on {street} this autumn.|This autumn the company will relocate to bigger offices on {street}.", (10, 60)),
    ("Flooding closes roads in {town}", "Heavy rain overnight into {day} caused the river to burst its banks in {town}.|The river in {town} overflowed after a night of heavy rain leading into {day}.", "At least {n} homes were flooded and several roads, including {street}, remain closed.|Water entered at least {n} houses, and a number of roads, {street} among them, are still shut.", "county emergency manager", "Do not drive through flood water; it only takes a few inches to sweep a car away|Never drive into flooded roads, because a few inches of water can carry off a car", "Sandbags are available free of charge at the fire station.|Free sandbags can be collected at the fire station.", (20, 400)),
    ("Museum in {town} opens dinosaur exhibit", "The natural history museum in {town} unveiled a new dinosaur gallery on {day}.|On {day}, {town}'s natural history museum opened a gallery devoted to dinosaurs.", "The centrepiece is a nearly complete skeleton found by a rancher, along with {n} fossils from the region.|Its highlight is an almost complete skeleton discovered by a rancher, shown with {n} local fossils.", "museum curator", "Children can touch real fossils that are millions of years old|Kids get to handle genuine fossils that are millions of years old", "Admission to the exhibit is free for children under twelve.|Children younger than twelve can see the exhibit for free.", (40, 300)),
    ("{town} council approves budget of ${money}", "The {town} city council passed a ${money} budget for the coming year on {day}.|On {day}, council members in {town} approved next year's budget of ${money}.", "The plan funds {n} new police and fire positions and repairs to several parks, without raising property taxes.|It pays for {n} additional police officers and firefighters and park repairs, with no property tax increase.", "city finance director", "We balanced the books without asking homeowners to pay more|The budget balances without a higher bill for homeowners", "The budget takes effect on the first of July.|It comes into force on July 1.", (4, 25)),
    ("Snowstorm closes schools in {town}", "A winter storm dropped 40 centimetres of snow on {town} overnight into {day}.|Overnight into {day}, {town} was buried under 40 centimetres of snow.", "All schools were closed and {n} snowplough runs were made to clear main roads.|Every school shut for the day, and ploughs made {n} runs to open the main roads.", "public works supervisor", "Please stay off the roads so our ploughs can do their job|Stay home if you can and let the ploughs work", "Trash collection is delayed by one day this week.|Rubbish collection will run a day late this week.", (60, 400)),
    ("{town} opens new animal shelter", "A new animal shelter opened on {street} on {day}, replacing a building from the 1960s.|On {day}, the town's new animal shelter on {street} replaced a facility dating from the 1960s.", "The shelter has room for {n} dogs and cats and a clinic for low-cost spaying.|There is space for {n} cats and dogs, plus a clinic offering cheap neutering.", "shelter director", "Every animal here deserves a second chance and a loving home|Each of these animals deserves a fresh start with a caring family", "Adoption fees are waived for the opening month.|For its first month, the shelter will not charge adoption fees.", (40, 200)),
    ("Train service between {town} and the city to expand", "The regional rail operator announced on {day} that trains between {town} and the city will run every 30 minutes.|On {day}, the rail company said trains linking {town} with the city will run twice an hour.", "Currently only {n} trains a day serve the station, mostly at rush hour.|At present the station sees just {n} trains daily, most of them at peak times.", "rail operator spokesperson", "More frequent trains will take cars off the highway|A train every half hour means fewer cars on the motorway", "The new timetable starts in December.|The expanded schedule begins in December.", (6, 14)),
    ("{town} students win national robotics contest", "A team of six students from {town} High School won first place at the national robotics championship on {day}.|On {day}, six {town} High School students took top honours at the national robotics finals.", "Their robot, built from recycled parts, beat {n} other teams in the final round.|Made largely from recycled parts, their robot outscored {n} rival teams in the final.", "team coach", "These kids spent every weekend for six months in the workshop|The students gave up their weekends for half a year to work on it", "The team will represent the country at the world championship in the spring.|In the spring they will compete for the country at the world finals.", (12, 40)),
    ("Gas leak forces evacuation of {street}", "Firefighters evacuated several buildings on {street} on {day} after a construction crew hit a gas line.|A construction crew struck a gas pipe on {street} on {day}, and firefighters cleared nearby buildings.", "About {n} people were moved to safety and nobody was hurt.|Around {n} people were evacuated, and no injuries were reported.", "fire captain", "The crew did the right thing by calling us right away|The workers called us immediately, which was exactly right", "The gas company repaired the line and residents were allowed back in the evening.|By evening the line was fixed and residents could return.", (40, 300)),
    ("New playground opens in {town} park", "Children in {town} got a new playground on {day} at the park near {street}.|On {day}, a new playground opened at the park by {street} in {town}.", "The ${money} project includes a wheelchair-accessible swing and a splash pad, and was designed with input from {n} local children.|Costing ${money}, it features a swing that wheelchair users can ride and a splash pad, and {n} local kids helped design it.", "parks director", "We asked the kids what they wanted, and they told us|We let children tell us what they wanted, and they did", "The splash pad will operate from June to September.|The water area runs from June through September.", (50, 400)),
    ("{town} restaurant inspection finds violations", "A health inspection of a downtown {town} restaurant on {day} found {n} violations, including food stored at unsafe temperatures.|On {day}, inspectors found {n} problems at a restaurant in central {town}, among them food kept at unsafe temperatures.", "The restaurant was ordered to close until the problems are fixed.|It must stay shut until the issues are resolved.", "county health inspector", "Most restaurants in our county do an excellent job, but when we find risks we act|The vast majority of local restaurants are excellent; when there is a risk, we step in", "A follow-up inspection is scheduled for next week.|Inspectors will return next week to check again.", (5, 15)),
    ("Airport near {town} adds direct flights", "The regional airport near {town} announced on {day} new direct flights to two major cities.|On {day}, the airport serving {town} said it will add nonstop service to two large cities.", "The airport expects {n} more passengers a year as a result.|Officials expect the routes to bring {n} extra travellers each year.", "airport manager", "Local businesses have been asking for these routes for years|Businesses in the area have wanted these flights for a long time", "The first flights depart in March, and tickets are on sale now.|Tickets are already available for the first departures in March.", (20000, 90000)),
    ("{town} recycling program to accept more plastics", "Starting {day}, households in {town} can put yogurt pots and food trays in their recycling bins.|From {day}, {town} residents may recycle yogurt containers and plastic food trays at the curb.", "The town expects to keep {n} tonnes of plastic out of the landfill each year.|Officials estimate this will divert {n} tonnes of plastic from landfill yearly.", "sustainability officer", "Rinse items first; clean plastic is what makes recycling work|Please rinse containers, because only clean plastic can be recycled", "Updated guides will be mailed to every household.|A new recycling guide will be posted to each home.", (100, 900)),
    ("Historic theatre in {town} saved from demolition", "A 1920s theatre on {street} in {town} will be restored instead of demolished after a vote on {day}.|Following a vote on {day}, the 1920s theatre on {street} will be restored rather than torn down.", "A local trust raised ${money} from {n} donors to buy the building.|A community trust collected ${money} from {n} donors to purchase it.", "trust chairperson", "This theatre is part of the town's memory, and now it has a future|The theatre holds the town's memories, and now it will have a future too", "Restoration work will take two years, with the first shows planned for the following season.|The restoration will last two years, and performances should resume the season after.", (800, 6000)),
    ("Drought prompts watering ban in {town}", "Officials in {town} banned garden sprinklers and car washing at home on {day} as reservoir levels fell.|On {day}, {town} prohibited sprinklers and washing cars at home because the reservoirs are low.", "Reservoirs are at 41 percent, and {n} households have already received warning letters.|The reservoirs stand at 41 percent, and warning letters have gone to {n} homes.", "water board director", "Every litre we save now helps us get through the summer|Each litre saved today helps carry us through summer", "Fines of up to $500 may apply to repeat offenders.|People who break the rules repeatedly could be fined up to $500.", (50, 600)),
    ("{town} celebrates 150th anniversary", "{town} marked its 150th anniversary on {day} with a parade down {street}.|A parade along {street} on {day} kicked off {town}'s 150th birthday celebrations.", "An estimated {n} people watched as floats, marching bands and vintage cars passed by.|Around {n} spectators lined the route to watch floats, bands and old cars.", "mayor", "We are celebrating 150 years of neighbours helping neighbours|This is a celebration of a century and a half of people looking out for each other", "Fireworks are planned at the lake on Saturday night.|There will be fireworks by the lake on Saturday night.", (3000, 20000)),
    ("Rare bird draws crowds to {town}", "A rare Arctic gull spotted at the harbour in {town} on {day} has drawn birdwatchers from across the country.|Birdwatchers from all over the country have arrived in {town} since a rare Arctic gull appeared at the harbour on {day}.", "More than {n} visitors have come to see the bird, filling local cafes and hotels.|Over {n} people have travelled to see it, and cafes and hotels are busy.", "local birding club president", "It is probably the only one of its kind in this part of the world right now|It may be the only bird like it anywhere in this region at the moment", "Visitors are asked to keep their distance and not feed the bird.|People should stay back and should not feed it.", (300, 3000)),
    ("Nurses in {town} reach deal, ending strike", "Nurses at {town} General Hospital returned to work on {day} after reaching an agreement with management.|On {day}, nurses went back to their shifts at {town} General Hospital once a deal with management was reached.", "The three-year contract raises pay by {n} percent and limits how many patients each nurse looks after.|Under the three-year deal, pay goes up {n} percent and there is a cap on patients per nurse.", "nurses' union representative", "This agreement is about patient safety as much as it is about pay|The deal is as much about keeping patients safe as it is about wages", "Postponed surgeries will be rescheduled over the next two weeks.|Operations that were delayed will be booked again within two weeks.", (4, 12)),
    ("Sinkhole opens on {street}", "A sinkhole about four metres wide opened on {street} in {town} on {day}.|On {day}, a sinkhole roughly four metres across appeared on {street} in {town}.", "No one was hurt, but {n} homes were evacuated as a precaution.|Nobody was injured, though {n} houses were cleared as a safety measure.", "city engineer", "An old drainage pipe likely collapsed after weeks of rain|We think a drainage pipe gave way after weeks of wet weather", "The road will stay closed while engineers assess the ground.|The street remains closed while engineers check the ground underneath.", (3, 20)),
    ("Free flu shots offered in {town}", "The {town} health department will offer free flu vaccinations starting {day}.|Beginning {day}, the health department in {town} is giving flu jabs at no cost.", "Clinics will run at {n} locations, including schools, libraries and the community centre.|Shots will be available at {n} sites, such as schools, libraries and the community centre.", "public health nurse", "Getting vaccinated protects you and the people around you|A flu shot protects both you and those you are close to", "No appointment is needed; just bring a photo ID.|You do not need to book; bring photo identification.", (5, 25)),
    ("{town} approves affordable housing project", "The planning board in {town} approved {n} affordable apartments on {street} on {day}.|On {day}, {town}'s planning board gave the go-ahead for {n} low-cost apartments on {street}.", "Rents will be capped for families earning less than the local median income.|Families earning under the area's median income will pay capped rents.", "housing committee chair", "Teachers, nurses and young families should be able to afford to live here|People like teachers, nurses and young families need to be able to live in this town", "Construction could start within a year.|Building work may begin in the next twelve months.", (30, 200)),
    ("Coyote sightings rise in {town} neighbourhoods", "Residents near {street} reported several coyote sightings in the week ending {day}.|In the week up to {day}, people living near {street} reported seeing coyotes several times.", "Animal control has logged {n} calls this month, double last year's number.|There have been {n} calls to animal control this month, twice as many as a year ago.", "wildlife officer", "Coyotes are shy, but keep small pets inside at night and do not leave food out|They usually avoid people, but bring small pets in at night and do not leave food outside", "A public information session will be held at the library next week.|Next week the library will host an information evening on coyotes.", (20, 90)),
    ("Solar farm proposed near {town}", "An energy company unveiled plans on {day} for a solar farm on farmland north of {town}.|On {day}, a power company proposed building a solar farm on fields north of {town}.", "The project would power about {n} homes and cover 80 hectares.|Covering 80 hectares, it could supply electricity to roughly {n} households.", "county planning officer", "We will look closely at the impact on farmland and wildlife|The effect on farmland and wildlife will get a careful review", "A public hearing is scheduled for next month.|There will be a public hearing next month.", (5000, 20000)),
    ("Youth football club in {town} gets new pitch", "The youth football club in {town} played its first match on a new artificial pitch on {day}.|On {day}, {town}'s youth football club kicked off its first game on a brand-new artificial pitch.", "The ${money} pitch can be used all year and will host {n} teams.|Costing ${money}, it can be played on in any season and will be home to {n} teams.", "club president", "No more cancelled games because of a muddy field|Muddy fields will not cancel our games any more", "The pitch will also be open to schools during the week.|Local schools can use the pitch on weekdays.", (10, 40)),
    ("Fire destroys warehouse in {town}", "A fire destroyed a furniture warehouse on {street} in {town} on {day}.|On {day}, fire tore through a furniture warehouse on {street} in {town}.", "More than {n} firefighters from three towns fought the blaze for six hours.|Firefighters from three towns, more than {n} in all, battled the flames for six hours.", "fire marshal", "The building was empty, and thankfully no one was injured|Luckily no one was inside and nobody was hurt", "Investigators are working to determine the cause.|The cause is still under investigation.", (40, 120)),
    ("Road resurfacing to begin on {street}", "Resurfacing work on {street} in {town} will start on {day} and last about two weeks.|Work to resurface {street} in {town} begins on {day} and should take roughly two weeks.", "Lanes will be closed overnight, affecting about {n} drivers a night.|Overnight lane closures will affect around {n} drivers each night.", "highways manager", "Working at night keeps the disruption to businesses as low as possible|By working overnight we keep disruption for businesses to a minimum", "Signs will show diversion routes.|Diversions will be signposted.", (500, 3000)),
)  # fmt: skip

# (dish, cooking minutes, oven degrees C (0: no oven), description, ingredients, steps, tip)
RECIPES = (
    ("banana bread", 55, 180, "This moist loaf is the best way to use up overripe bananas.|Bananas going brown on the counter? This tender loaf puts them to good use.", "3 ripe bananas;250 g plain flour;1 teaspoon baking soda;100 g melted butter;150 g brown sugar;1 egg;a pinch of salt", "Heat the oven to {temp} degrees and grease a loaf tin.|Grease a loaf tin and preheat the oven to {temp} degrees.;Mash the bananas with a fork, then stir in the butter, sugar and egg.|Crush the bananas with a fork and mix in the butter, sugar and egg.;Fold in the flour, baking soda and salt until just combined.|Add the flour, soda and salt and stir only until no dry flour remains.;Bake for {cook} minutes, until a skewer comes out clean.|Bake it {cook} minutes or until a skewer pushed into the middle comes out clean.", "Wrapped tightly, it stays moist for three days.|Keep it well wrapped and it will stay soft for three days."),
    ("chicken noodle soup", 30, 0, "A bowl of this soup is what you want on a cold or sick day.|On a chilly day, or when you feel under the weather, nothing beats this soup.", "2 chicken breasts;2 carrots, sliced;2 celery sticks, sliced;1 onion, diced;1.5 litres chicken stock;150 g egg noodles;fresh parsley", "Soften the onion, carrot and celery in a little oil in a large pot.|Cook the onion, carrots and celery gently in some oil in a big pot until soft.;Add the stock and chicken and simmer for {cook} minutes.|Pour in the stock, add the chicken, and let it simmer {cook} minutes.;Lift out the chicken, shred it with two forks and return it to the pot.|Take the chicken out, pull it apart with two forks, and put it back.;Add the noodles and cook until tender, then season and scatter with parsley.|Cook the noodles in the soup until soft, season, and finish with parsley.", "It freezes well without the noodles; add them when reheating.|Freeze it before adding the noodles, and cook them in when you reheat."),
    ("classic pancakes", 15, 0, "Fluffy pancakes for a slow weekend breakfast.|These light, fluffy pancakes make a lazy weekend morning.", "200 g flour;2 teaspoons baking powder;1 tablespoon sugar;300 ml milk;1 egg;2 tablespoons melted butter", "Whisk the flour, baking powder and sugar together in a bowl.|Mix the flour, sugar and baking powder in a bowl.;Beat the milk, egg and butter, then pour into the dry ingredients and stir briefly.|Whisk milk, egg and butter, add them to the flour mix and stir just a little.;Let the batter rest for five minutes.|Leave the batter to stand for five minutes.;Cook ladlefuls in a hot buttered pan until bubbles appear, then flip.|Pour ladles of batter into a hot greased pan, and turn them once bubbles form.", "A few lumps in the batter are fine and keep the pancakes tender.|Do not worry about small lumps; they make softer pancakes."),
    ("vegetable stir-fry", 10, 0, "A colourful stir-fry that is on the table in fifteen minutes.|Bright, crunchy and ready in a quarter of an hour.", "1 red pepper;1 head of broccoli;2 carrots;a handful of snap peas;2 cloves garlic;3 tablespoons soy sauce;1 tablespoon sesame oil", "Cut all the vegetables into thin, even strips.|Slice the vegetables thinly so they cook evenly.;Heat the oil in a wok until it just starts to smoke.|Get the wok very hot with the oil in it, until it barely smokes.;Stir-fry the garlic for thirty seconds, then add the vegetables and toss for four minutes.|Fry the garlic briefly, then add the vegetables and keep them moving for about four minutes.;Pour in the soy sauce, toss once more and serve over rice.|Add the soy sauce, give it a final toss, and serve with rice.", "Have everything chopped before you start; the cooking goes fast.|Prepare all the vegetables first, because the cooking only takes minutes."),
    ("beef chili", 60, 0, "A rich, smoky chili that tastes even better the next day.|Deep, smoky and even better on day two.", "500 g minced beef;1 onion;2 cloves garlic;1 tin chopped tomatoes;1 tin kidney beans;2 teaspoons chili powder;1 teaspoon ground cumin", "Brown the beef in a large pan, breaking it up as it cooks.|Fry the mince in a big pan until browned, breaking up any lumps.;Add the onion and garlic and cook until soft.|Stir in the onion and garlic and let them soften.;Add the spices, tomatoes and beans.|Mix in the chili powder, cumin, tomatoes and beans.;Simmer gently for {cook} minutes, stirring now and then.|Let it bubble gently {cook} minutes, stirring from time to time.", "Serve with sour cream, grated cheese and warm tortillas.|Top with sour cream and cheese, with tortillas on the side."),
    ("Greek salad", 0, 0, "A crisp, fresh salad that needs no cooking at all.|Fresh and crunchy, with no cooking required.", "4 ripe tomatoes;1 cucumber;1 red onion;1 green pepper;200 g feta cheese;a handful of black olives;olive oil and dried oregano", "Cut the tomatoes and cucumber into large chunks.|Chop the tomatoes and cucumber into big pieces.;Slice the onion and pepper into thin rings.|Cut the onion and pepper into fine rings.;Put everything in a bowl and lay the feta on top in one piece.|Combine the vegetables in a bowl and place the block of feta on top.;Drizzle with olive oil and sprinkle with oregano.|Finish with a good pour of olive oil and a pinch of oregano.", "Salt the tomatoes only just before serving so they stay firm.|Add salt at the last minute to keep the tomatoes from going soft."),
    ("chocolate chip cookies", 11, 180, "Chewy in the middle, crisp at the edges, and full of chocolate.|Crisp edges, soft centres and plenty of chocolate.", "225 g softened butter;200 g brown sugar;100 g white sugar;2 eggs;1 teaspoon vanilla;350 g flour;1 teaspoon baking soda;300 g chocolate chips", "Cream the butter and both sugars until light.|Beat the butter with the two sugars until fluffy.;Beat in the eggs and vanilla.|Add the eggs and vanilla and mix well.;Stir in the flour and soda, then the chocolate chips.|Mix in the flour and baking soda, followed by the chocolate.;Scoop onto trays and bake at {temp} degrees for {cook} minutes.|Spoon the dough onto baking trays and bake {cook} minutes at {temp} degrees.", "Chill the dough for an hour for thicker cookies.|For thicker cookies, rest the dough in the fridge for an hour first."),
    ("guacamole", 0, 0, "Fresh, chunky guacamole that beats anything from a jar.|Chunky homemade guacamole, far better than the shop-bought kind.", "3 ripe avocados;1 lime;half a red onion;1 tomato;a handful of coriander;1 green chili;salt", "Halve the avocados, remove the stones and scoop the flesh into a bowl.|Cut the avocados in half, take out the stones, and spoon the flesh into a bowl.;Mash roughly with a fork, leaving some chunks.|Crush them with a fork, keeping it a little chunky.;Stir in the lime juice, onion, tomato, chili and coriander.|Mix in the onion, tomato, chili, coriander and the juice of the lime.;Season with salt and serve straight away with tortilla chips.|Add salt to taste and eat right away with tortilla chips.", "Press cling film onto the surface to stop it turning brown.|To keep it green, cover it with cling film pressed right onto the top."),
    ("lasagne", 45, 190, "Layers of rich meat sauce, creamy white sauce and pasta, baked until bubbling.|Rich meat sauce, creamy white sauce and pasta sheets, baked until golden and bubbling.", "500 g minced beef;1 onion;1 tin chopped tomatoes;2 tablespoons tomato paste;12 lasagne sheets;600 ml white sauce;100 g grated parmesan", "Brown the mince with the onion, then add the tomatoes and paste and simmer for twenty minutes.|Fry the beef and onion, stir in the tomatoes and paste, and let it cook down for twenty minutes.;Spread a little meat sauce in a baking dish and cover with lasagne sheets.|Put a thin layer of meat sauce in a dish and top it with pasta sheets.;Repeat the layers of meat, pasta and white sauce, finishing with white sauce and parmesan.|Keep layering meat sauce, pasta and white sauce, ending with white sauce and cheese.;Bake at {temp} degrees for {cook} minutes until golden.|Cook in the oven at {temp} degrees for {cook} minutes, until browned on top.", "Let it rest for ten minutes before cutting so the layers hold.|Leave it ten minutes before slicing, so it does not fall apart."),
    ("roasted tomato soup", 40, 200, "Roasting the tomatoes gives this soup a deep, sweet flavour.|This soup gets its sweet, deep taste from oven-roasted tomatoes.", "1 kg ripe tomatoes;1 red onion;4 cloves garlic;2 tablespoons olive oil;500 ml vegetable stock;a handful of basil", "Halve the tomatoes and onion and spread them on a tray with the garlic.|Cut the tomatoes and onion in half and lay them on a baking tray with the garlic.;Drizzle with oil and roast at {temp} degrees for {cook} minutes.|Pour over the oil and roast them {cook} minutes at {temp} degrees.;Tip everything into a pot with the stock and blend until smooth.|Put it all in a pan with the stock and blitz until smooth.;Stir in the basil and season to taste.|Add the basil and adjust the seasoning.", "A swirl of cream and some crusty bread make it a meal.|Serve with a spoon of cream and crusty bread for a full meal."),
    ("roast chicken", 80, 200, "A simple roast chicken with crisp skin and juicy meat.|Crispy skin, juicy meat and almost no effort.", "1 whole chicken, about 1.6 kg;1 lemon;1 bulb of garlic;a few sprigs of thyme;2 tablespoons butter;salt and pepper", "Take the chicken out of the fridge an hour before cooking and dry the skin.|Let the bird come to room temperature for an hour and pat it dry.;Stuff the lemon, garlic and thyme inside and rub the skin with butter and salt.|Put the lemon, garlic and thyme in the cavity, then rub butter and salt all over.;Roast at {temp} degrees for {cook} minutes, until the juices run clear.|Cook it {cook} minutes at {temp} degrees, until the juices are clear.;Rest it for fifteen minutes before carving.|Leave it to rest a quarter of an hour before you carve.", "Use the pan juices to make a quick gravy.|The juices left in the tin make an easy gravy."),
    ("mushroom risotto", 30, 0, "A creamy risotto that is worth the stirring.|Creamy, comforting and well worth twenty minutes of stirring.", "300 g risotto rice;400 g mushrooms;1 onion;1 litre hot vegetable stock;100 ml white wine;50 g parmesan;2 tablespoons butter", "Fry the mushrooms in butter until golden, then set them aside.|Brown the mushrooms in butter and put them to one side.;Soften the onion, add the rice and stir until the grains turn glossy.|Cook the onion until soft, then stir in the rice until it looks shiny.;Add the wine, then the stock a ladle at a time, stirring until each ladle is absorbed.|Pour in the wine, then add the hot stock one ladle at a time, stirring until it soaks in.;After about {cook} minutes stir in the mushrooms, parmesan and remaining butter.|When the rice is creamy, after around {cook} minutes, fold in the mushrooms, cheese and the rest of the butter.", "Keep the stock hot; cold stock stops the rice from cooking evenly.|Cold stock slows the cooking, so keep it simmering."),
    ("lemon drizzle cake", 45, 180, "A light sponge soaked in tangy lemon syrup.|Soft sponge cake drenched in sharp lemon syrup.", "225 g softened butter;225 g caster sugar;4 eggs;225 g self-raising flour;2 lemons;85 g icing sugar", "Beat the butter and sugar until pale, then add the eggs one at a time.|Cream the butter and sugar until light and beat in the eggs one by one.;Fold in the flour and the zest of one lemon.|Gently mix in the flour and grated zest of a lemon.;Bake in a lined loaf tin at {temp} degrees for {cook} minutes.|Pour into a lined tin and bake {cook} minutes at {temp} degrees.;Mix the lemon juice with icing sugar and pour it over the warm cake.|Stir the juice of the lemons into the icing sugar and spoon it over the cake while warm.", "Prick the cake all over with a skewer so the syrup soaks in.|Poke holes all over the top so the syrup can sink in."),
    ("fish tacos", 10, 0, "Crispy fish, crunchy slaw and a zesty sauce in warm tortillas.|Warm tortillas filled with crisp fish, crunchy cabbage and a tangy sauce.", "500 g white fish fillets;8 small tortillas;a quarter of a red cabbage;1 lime;4 tablespoons sour cream;1 teaspoon smoked paprika;coriander", "Season the fish with paprika and salt.|Rub the fish with smoked paprika and a little salt.;Fry it in a hot pan for three minutes on each side.|Cook it in a hot frying pan, three minutes a side.;Shred the cabbage and toss with half the lime juice.|Finely slice the cabbage and mix it with the juice of half the lime.;Fill warm tortillas with fish, slaw, sour cream and coriander.|Pile the fish, cabbage, sour cream and coriander into warmed tortillas.", "Warm the tortillas in a dry pan so they do not crack.|Heat the tortillas in a dry pan first to stop them from splitting."),
    ("shakshuka", 25, 0, "Eggs poached in a spiced tomato and pepper sauce.|A pan of eggs cooked gently in a spicy tomato and pepper sauce.", "2 red peppers;1 onion;3 cloves garlic;2 tins chopped tomatoes;1 teaspoon cumin;1 teaspoon paprika;6 eggs;crumbled feta", "Soften the sliced onion and peppers in olive oil for ten minutes.|Cook the onion and peppers slowly in olive oil for ten minutes.;Add the garlic and spices, then the tomatoes, and simmer until thick.|Stir in the garlic, cumin and paprika, add the tomatoes, and let it reduce.;Make six hollows and crack an egg into each.|Press six wells into the sauce and break an egg into each one.;Cover and cook for {cook} minutes, until the whites are set.|Put a lid on and cook {cook} minutes, until the egg whites are firm.", "Serve it in the pan with bread for dipping.|Bring the pan to the table with bread to mop up the sauce."),
    ("apple crumble", 40, 190, "Soft, sweet apples under a crunchy buttery topping.|A crunchy, buttery topping over soft spiced apples.", "6 cooking apples;50 g sugar;1 teaspoon cinnamon;150 g flour;100 g cold butter;75 g brown sugar;50 g oats", "Peel and slice the apples and toss them with the sugar and cinnamon.|Peel and cut up the apples, then mix them with the cinnamon and sugar.;Rub the butter into the flour until it looks like breadcrumbs.|Work the cold butter into the flour with your fingertips until crumbly.;Stir in the brown sugar and oats and scatter over the apples.|Mix in the oats and brown sugar, then spread it over the fruit.;Bake at {temp} degrees for {cook} minutes, until golden and bubbling.|Bake {cook} minutes at {temp} degrees until the top is golden and the fruit bubbles.", "Serve warm with custard or vanilla ice cream.|It is best warm, with custard or a scoop of ice cream."),
    ("hummus", 0, 0, "Silky smooth hummus in five minutes.|Smooth, creamy hummus made in five minutes.", "1 tin chickpeas;3 tablespoons tahini;1 lemon;1 clove garlic;3 tablespoons olive oil;a pinch of cumin;salt", "Drain the chickpeas, keeping the liquid.|Tip the chickpeas into a sieve, saving the water from the tin.;Blend them with the tahini, lemon juice, garlic and cumin.|Put the chickpeas in a blender with tahini, garlic, cumin and lemon juice.;Add the liquid a spoonful at a time until smooth.|Loosen it with the saved liquid, one spoonful at a time, until silky.;Spoon into a bowl and finish with olive oil.|Serve in a bowl with a drizzle of olive oil on top.", "Peeling the chickpeas makes it even smoother.|For the smoothest hummus, slip the skins off the chickpeas."),
    ("pad Thai", 15, 0, "Sweet, sour and salty noodles, faster than a takeaway.|A sweet and tangy noodle dish that is quicker than ordering in.", "200 g flat rice noodles;200 g prawns;2 eggs;3 tablespoons tamarind paste;2 tablespoons fish sauce;1 tablespoon sugar;bean sprouts and peanuts", "Soak the noodles in hot water until soft, then drain.|Cover the noodles with hot water, leave until soft, and drain.;Mix the tamarind, fish sauce and sugar for the sauce.|Stir together tamarind, sugar and fish sauce.;Fry the prawns, push them aside and scramble the eggs.|Cook the prawns, move them to one side, and scramble the eggs in the pan.;Add the noodles and sauce, toss well and top with sprouts and peanuts.|Toss in the noodles with the sauce and finish with bean sprouts and crushed peanuts.", "Squeeze fresh lime over each plate just before eating.|A squeeze of lime on each serving brings it to life."),
    ("French onion soup", 70, 0, "Slowly caramelised onions make this soup deeply savoury.|Onions cooked low and slow give this soup its deep, rich flavour.", "1 kg onions;50 g butter;1 teaspoon sugar;1.2 litres beef stock;a splash of brandy;slices of baguette;grated Gruyere", "Slice the onions thinly and cook them in butter for {cook} minutes until deep brown.|Cook finely sliced onions in butter for {cook} minutes, until dark and sticky.;Add the sugar and brandy and let it bubble.|Stir in the sugar and a splash of brandy and let it sizzle.;Pour in the stock and simmer for twenty minutes.|Add the beef stock and simmer for twenty minutes.;Top bowls with toasted baguette and cheese and grill until melted.|Float toast on each bowl, cover with cheese, and grill until bubbling.", "Do not rush the onions; the colour is the flavour.|The flavour comes from the colour, so give the onions time."),
    ("potato salad", 15, 0, "A creamy potato salad for barbecues and picnics.|Creamy potato salad that goes with every barbecue.", "1 kg new potatoes;4 tablespoons mayonnaise;2 tablespoons natural yogurt;1 tablespoon mustard;4 spring onions;a bunch of chives", "Boil the potatoes for {cook} minutes until tender, then drain.|Cook the potatoes in boiling water for {cook} minutes and drain them.;Let them cool a little and cut them in half.|Leave them to cool slightly, then halve them.;Mix the mayonnaise, yogurt and mustard.|Combine the mayo, yogurt and mustard in a bowl.;Fold the potatoes into the dressing with the onions and chives.|Toss the warm potatoes in the dressing with spring onions and chives.", "Dress the potatoes while they are still warm so they soak up the flavour.|Warm potatoes absorb more flavour, so dress them before they cool."),
    ("chicken curry", 35, 0, "A mild, creamy curry that the whole family will eat.|A gentle, creamy curry that pleases adults and children alike.", "4 chicken thighs;1 onion;2 cloves garlic;a thumb of ginger;2 tablespoons curry paste;1 tin coconut milk;a handful of spinach", "Fry the onion, garlic and ginger until soft.|Cook the onion with the garlic and ginger until softened.;Add the curry paste and cook for a minute, then add the diced chicken.|Stir in the paste for a minute before adding the chicken pieces.;Pour in the coconut milk and simmer for {cook} minutes.|Add the coconut milk and let it simmer {cook} minutes.;Stir in the spinach until it wilts and serve with rice.|Fold in the spinach until wilted and serve over rice.", "Thighs stay juicier than breast meat in a curry.|Use thigh meat; it stays more tender than breast."),
    ("spaghetti carbonara", 12, 0, "A real carbonara with no cream, just eggs, cheese and pancetta.|The authentic way: eggs, cheese and pancetta, and no cream at all.", "400 g spaghetti;150 g pancetta;3 egg yolks;1 whole egg;75 g pecorino;black pepper", "Cook the spaghetti in salted water.|Boil the pasta in well-salted water.;Fry the pancetta until crisp.|Cook the pancetta in a pan until crispy.;Whisk the eggs with the grated cheese and plenty of pepper.|Beat the eggs and yolks with the pecorino and lots of black pepper.;Toss the drained pasta with the pancetta off the heat, then stir in the egg mixture with a splash of pasta water.|Take the pan off the heat, add the pasta to the pancetta, and mix in the eggs with a little cooking water.", "Work off the heat, or the eggs will scramble.|Keep the pan away from the heat so the eggs stay silky."),
    ("blueberry muffins", 22, 200, "Tall, fluffy muffins bursting with blueberries.|Light, high-topped muffins packed with berries.", "300 g flour;2 teaspoons baking powder;150 g sugar;2 eggs;120 ml milk;100 ml vegetable oil;200 g blueberries", "Mix the flour, baking powder and sugar in a bowl.|Combine the dry ingredients in a large bowl.;Whisk the eggs, milk and oil and stir into the dry mix.|Beat the eggs with the milk and oil and add them to the flour.;Fold in the blueberries gently.|Carefully stir the blueberries through.;Fill the muffin cases and bake at {temp} degrees for {cook} minutes.|Divide between paper cases and bake {cook} minutes at {temp} degrees.", "Toss the berries in a little flour so they do not sink.|A dusting of flour keeps the blueberries from sinking to the bottom."),
    ("crunchy coleslaw", 0, 0, "A crunchy, tangy coleslaw that is lighter than the deli kind.|Lighter and fresher than shop coleslaw, with plenty of crunch.", "half a white cabbage;2 carrots;1 small red onion;3 tablespoons mayonnaise;2 tablespoons yogurt;1 tablespoon cider vinegar", "Shred the cabbage finely.|Slice the cabbage into thin ribbons.;Grate the carrots and slice the onion.|Coarsely grate the carrots and thinly slice the onion.;Mix the mayonnaise, yogurt and vinegar.|Stir the vinegar into the mayo and yogurt.;Toss everything together and season.|Combine it all and add salt and pepper.", "Make it an hour ahead so the flavours blend.|An hour in the fridge lets the flavours come together."),
    ("red lentil dahl", 25, 0, "A cheap, filling dahl that is ready in half an hour.|Warming, filling and inexpensive, ready in thirty minutes.", "250 g red lentils;1 onion;3 cloves garlic;a thumb of ginger;1 teaspoon turmeric;1 teaspoon cumin seeds;1 tin coconut milk", "Rinse the lentils until the water runs clear.|Wash the lentils under the tap until the water is clear.;Fry the onion, garlic, ginger and spices until fragrant.|Cook the onion with the garlic, ginger and spices until they smell fragrant.;Add the lentils, coconut milk and 500 ml water and simmer for {cook} minutes.|Stir in the lentils with the coconut milk and half a litre of water and cook {cook} minutes.;Season with salt and a squeeze of lemon.|Finish with salt and some lemon juice.", "It thickens as it cools, so loosen leftovers with a little water.|Add a splash of water when reheating, as it thickens overnight."),
    ("margherita pizza", 10, 250, "A thin, crisp pizza with tomato, mozzarella and basil.|Crisp thin-crust pizza topped with tomato, mozzarella and fresh basil.", "300 g bread flour;7 g dried yeast;200 ml warm water;1 tin plum tomatoes;2 balls of mozzarella;fresh basil;olive oil", "Mix the flour, yeast and water and knead for ten minutes.|Combine flour, yeast and warm water, then knead for ten minutes.;Let the dough rise for an hour, then stretch it thinly.|Leave it to rise for an hour and stretch it out thin.;Spread with crushed tomatoes and torn mozzarella.|Top with crushed tomatoes and pieces of mozzarella.;Bake at {temp} degrees for {cook} minutes and finish with basil.|Cook {cook} minutes at {temp} degrees, then scatter over the basil.", "Heat a baking tray in the oven first for a crisper base.|Preheat the tray in the oven so the base turns out crisp."),
    ("beef stew", 150, 160, "A slow-cooked stew with beef that falls apart.|Tender beef that falls apart after hours of slow cooking.", "1 kg stewing beef;2 tablespoons flour;2 onions;3 carrots;500 ml beef stock;250 ml red wine;2 bay leaves", "Toss the beef in flour and brown it in batches.|Coat the beef in flour and sear it a few pieces at a time.;Fry the onions and carrots in the same pot.|Soften the onion and carrot in the pot.;Return the beef, add the wine, stock and bay leaves and bring to a simmer.|Put the meat back, pour in the stock and wine, add bay leaves and bring to a gentle bubble.;Cover and cook in the oven at {temp} degrees for {cook} minutes.|Put the lid on and cook {cook} minutes at {temp} degrees in the oven.", "Like most stews, it tastes even better the next day.|Make it a day ahead; it tastes better after a night in the fridge."),
    ("egg fried rice", 10, 0, "The best way to use yesterday's leftover rice.|Leftover rice becomes dinner in ten minutes.", "500 g cooked cold rice;3 eggs;100 g frozen peas;3 spring onions;2 tablespoons soy sauce;1 tablespoon vegetable oil", "Heat the oil in a wok until very hot.|Get the oil in the wok smoking hot.;Scramble the eggs and break them into pieces.|Cook the beaten eggs and chop them up with the spatula.;Add the rice and peas and stir-fry for five minutes.|Throw in the cold rice and peas and fry for about five minutes.;Season with soy sauce and top with spring onions.|Add the soy sauce and scatter over spring onions.", "Use cold rice; fresh rice turns mushy.|Freshly cooked rice goes soggy, so use cold leftovers."),
    ("overnight oats", 0, 0, "A no-cook breakfast you make the night before.|Make it the evening before and breakfast is ready when you wake up.", "80 g rolled oats;150 ml milk;3 tablespoons yogurt;1 tablespoon chia seeds;1 teaspoon honey;a handful of berries", "Stir the oats, milk, yogurt and chia seeds together in a jar.|Mix oats, chia seeds, milk and yogurt in a jar.;Sweeten with honey.|Add a little honey for sweetness.;Cover and leave in the fridge overnight.|Put the lid on and refrigerate until morning.;Top with berries just before eating.|Add fresh berries right before you eat.", "It keeps for three days, so make a few jars at once.|Prepare several jars; they last three days in the fridge."),
    ("fudgy brownies", 25, 180, "Dense, fudgy brownies with a crackly top.|Rich, gooey brownies with that shiny crackled top.", "200 g dark chocolate;175 g butter;250 g caster sugar;3 eggs;100 g plain flour;30 g cocoa powder", "Melt the chocolate and butter together.|Gently melt the butter with the chocolate.;Whisk the eggs and sugar until thick and pale.|Beat the sugar and eggs until they are pale and thick.;Fold in the chocolate, then the flour and cocoa.|Stir the melted chocolate into the eggs, then the flour and cocoa.;Bake in a lined tin at {temp} degrees for {cook} minutes.|Pour into a lined tin and bake {cook} minutes at {temp} degrees.", "Take them out while the middle is still slightly soft.|Remove them when the centre still has a slight wobble."),
    ("Caesar salad", 10, 0, "A classic Caesar with crunchy croutons and a punchy dressing.|Crisp lettuce, crunchy croutons and a bold, garlicky dressing.", "2 romaine lettuces;2 slices of bread;50 g parmesan;1 egg yolk;2 anchovy fillets;1 clove garlic;1 lemon;olive oil", "Cut the bread into cubes and toast with olive oil until golden.|Toast cubes of bread in olive oil until crisp.;Blend the yolk, anchovies, garlic, lemon juice and half the parmesan.|Whizz the egg yolk with anchovy, garlic, lemon and some of the cheese.;Slowly add olive oil until the dressing is thick.|Drizzle in oil bit by bit until the dressing thickens.;Toss the lettuce with the dressing and top with croutons and parmesan.|Coat the leaves in dressing and finish with croutons and the rest of the cheese.", "Add grilled chicken to turn it into a main course.|For a full meal, top it with grilled chicken."),
    ("baked falafel", 25, 200, "Crisp falafel baked in the oven instead of fried.|Oven-baked falafel, crunchy without the deep fryer.", "1 tin chickpeas;1 small onion;2 cloves garlic;a bunch of parsley;1 teaspoon cumin;1 teaspoon ground coriander;2 tablespoons flour", "Blitz the chickpeas, onion, garlic, herbs and spices into a coarse paste.|Pulse the chickpeas with onion, garlic, parsley and spices until roughly chopped.;Stir in the flour and shape into small balls.|Mix in the flour and roll the mixture into little balls.;Place on an oiled tray and brush with oil.|Lay them on a greased baking tray and brush them with oil.;Bake at {temp} degrees for {cook} minutes, turning halfway.|Cook {cook} minutes at {temp} degrees, flipping them halfway through.", "Serve in pitta with salad and a yogurt sauce.|They are great in pitta bread with salad and garlic yogurt."),
    ("minestrone", 35, 0, "A hearty Italian vegetable soup with pasta and beans.|Thick Italian soup full of vegetables, beans and pasta.", "1 onion;2 carrots;2 celery sticks;1 courgette;1 tin chopped tomatoes;1 tin cannellini beans;1 litre vegetable stock;100 g small pasta", "Dice the onion, carrots, celery and courgette.|Cut all the vegetables into small cubes.;Soften them in olive oil for ten minutes.|Cook them gently in olive oil for ten minutes.;Add the tomatoes, beans and stock and simmer for {cook} minutes.|Pour in the stock, tomatoes and beans and let it simmer {cook} minutes.;Add the pasta and cook until tender.|Stir in the pasta and cook until soft.", "Top each bowl with pesto and parmesan.|A spoon of pesto and grated parmesan on top makes it special."),
    ("salmon with lemon and dill", 15, 200, "Tender baked salmon with a bright lemon and dill butter.|Oven-baked salmon with a fresh, zesty lemon and dill butter.", "4 salmon fillets;1 lemon;2 tablespoons butter;a bunch of dill;1 clove garlic;salt and pepper", "Lay the salmon on a lined baking tray.|Put the fillets on a tray lined with paper.;Mix the soft butter with chopped dill, garlic and lemon zest.|Combine softened butter with garlic, lemon zest and chopped dill.;Spread the butter over the fish.|Dot the butter over each fillet.;Bake at {temp} degrees for {cook} minutes, until it flakes easily.|Cook {cook} minutes at {temp} degrees, until the fish flakes.", "Serve with new potatoes and green beans.|It goes well with new potatoes and green beans."),
    ("scones", 12, 220, "Light, tall scones for a proper afternoon tea.|Tall, fluffy scones, just right for afternoon tea.", "350 g self-raising flour;85 g cold butter;3 tablespoons sugar;175 ml milk;1 teaspoon vanilla;1 egg for glazing", "Rub the butter into the flour until it looks like breadcrumbs.|Work the cold butter into the flour until sandy.;Stir in the sugar, then the warm milk and vanilla.|Add the sugar, then mix in the milk and vanilla.;Pat the dough out to four centimetres thick and cut out rounds.|Press the dough to about four centimetres and stamp out circles.;Brush with egg and bake at {temp} degrees for {cook} minutes.|Glaze with beaten egg and bake {cook} minutes at {temp} degrees.", "Do not twist the cutter, or the scones will rise unevenly.|Push the cutter straight down without twisting so they rise evenly."),
    ("gazpacho", 0, 0, "A chilled Spanish soup for the hottest days of summer.|Cold Spanish tomato soup, perfect in a heat wave.", "1 kg ripe tomatoes;1 cucumber;1 red pepper;1 clove garlic;2 tablespoons sherry vinegar;100 ml olive oil;a slice of stale bread", "Roughly chop the tomatoes, cucumber and pepper.|Cut the vegetables into rough chunks.;Blend with the garlic, bread and vinegar.|Put them in a blender with the bread, garlic and vinegar.;With the motor running, add the olive oil.|Pour in the oil slowly while blending.;Chill for at least two hours and serve very cold.|Refrigerate for two hours or more and serve ice cold.", "Garnish with diced cucumber and a drizzle of oil.|Top each bowl with chopped cucumber and a little olive oil."),
    ("macaroni cheese", 25, 200, "Creamy, cheesy macaroni with a crunchy top.|A rich, cheesy pasta bake with a crisp golden crust.", "300 g macaroni;50 g butter;50 g flour;600 ml milk;200 g mature cheddar;1 teaspoon mustard;breadcrumbs", "Cook the macaroni for two minutes less than the packet says.|Boil the pasta, stopping two minutes short of the packet time.;Melt the butter, stir in the flour, then whisk in the milk until thick.|Make a sauce: melt butter, add the flour, and gradually whisk in milk until it thickens.;Stir in most of the cheese and the mustard, then the pasta.|Add the mustard and most of the cheddar, then mix in the macaroni.;Top with the rest of the cheese and breadcrumbs and bake at {temp} degrees for {cook} minutes.|Cover with breadcrumbs and the remaining cheese and bake {cook} minutes at {temp} degrees.", "A mature cheddar gives the most flavour.|Use a strong cheddar for a deeper taste."),
    ("chicken fajitas", 15, 0, "Sizzling chicken and peppers wrapped in warm tortillas.|Sizzling strips of chicken and peppers in soft, warm wraps.", "3 chicken breasts;2 peppers;1 red onion;2 teaspoons fajita seasoning;1 lime;8 flour tortillas;sour cream and salsa", "Slice the chicken, peppers and onion into strips.|Cut the chicken and vegetables into thin strips.;Toss the chicken with the seasoning and lime juice.|Coat the chicken in the spice mix and lime juice.;Fry over high heat for {cook} minutes until cooked through.|Cook everything on a high heat for {cook} minutes until the chicken is done.;Serve in warm tortillas with sour cream and salsa.|Wrap in warmed tortillas with salsa and sour cream.", "Let everyone build their own at the table.|Put it all on the table and let people make their own."),
    ("carrot cake", 40, 180, "A moist, spiced carrot cake with cream cheese frosting.|Soft, spiced carrot cake topped with cream cheese icing.", "250 g grated carrots;200 g self-raising flour;200 g brown sugar;3 eggs;150 ml vegetable oil;2 teaspoons cinnamon;100 g walnuts;200 g cream cheese", "Whisk the eggs, sugar and oil.|Beat together the oil, eggs and sugar.;Stir in the flour, cinnamon, carrots and walnuts.|Fold in the carrots, nuts, flour and cinnamon.;Bake in a lined tin at {temp} degrees for {cook} minutes.|Pour into a lined tin and bake {cook} minutes at {temp} degrees.;Cool completely, then spread with sweetened cream cheese.|When completely cold, cover with the cream cheese frosting.", "Keep it in the fridge because of the frosting.|Store it in the fridge, as the icing contains cream cheese."),
    ("ratatouille", 45, 0, "A slow-cooked Provencal stew of summer vegetables.|Summer vegetables stewed slowly, the way they do it in Provence.", "1 aubergine;2 courgettes;2 peppers;1 onion;3 cloves garlic;1 tin chopped tomatoes;fresh thyme", "Cut all the vegetables into chunks of the same size.|Chop the vegetables into even pieces.;Fry the aubergine until golden, then set aside.|Brown the aubergine first and put it to one side.;Soften the onion, peppers and courgettes with the garlic.|Cook the onion, garlic, peppers and courgettes until soft.;Add the tomatoes, thyme and aubergine and simmer for {cook} minutes.|Return the aubergine with the tomatoes and thyme and stew it {cook} minutes.", "It is even better served at room temperature the next day.|Leave it overnight and eat it at room temperature for the best flavour."),
)  # fmt: skip

# (business kind, the word in its name, services, what makes it different)
BUSINESSES = (
    ("dental clinic", "Dental Care", "check-ups and cleanings;teeth whitening;fillings and crowns;emergency appointments;children's dentistry", "We see patients of all ages, from toddlers to grandparents.|Patients of every age are welcome, from small children to seniors."),
    ("plumbing company", "Plumbing", "leak repairs;boiler servicing;bathroom installations;blocked drains;24-hour emergency callouts", "Our plumbers arrive within two hours for emergencies.|In an emergency, a plumber will be with you within two hours."),
    ("bakery", "Bakery", "sourdough and rye bread;croissants baked every morning;celebration cakes to order;gluten-free loaves;coffee to go", "Our bread is made by hand from flour milled in the region.|Every loaf is shaped by hand using flour from local mills."),
    ("hair salon", "Hair Studio", "cuts and styling;colour and highlights;keratin treatments;bridal hair;men's cuts", "Our stylists take time to listen before they pick up the scissors.|Before any cutting starts, our stylists take the time to listen."),
    ("car repair garage", "Auto Repair", "safety inspections;brake and tyre service;engine diagnostics;air conditioning recharge;courtesy car", "We explain every repair and its price before we start work.|You get a clear explanation and a price for each repair before any work begins."),
    ("yoga studio", "Yoga", "beginner classes;vinyasa flow;prenatal yoga;meditation evenings;private sessions", "Mats and blocks are provided, so just bring yourself.|We lend mats and blocks; all you need to bring is you."),
    ("veterinary clinic", "Veterinary Clinic", "vaccinations;dental care for pets;surgery and x-rays;microchipping;nutrition advice", "Our vets treat cats, dogs, rabbits and other small animals.|We care for dogs, cats, rabbits and other small pets."),
    ("locksmith", "Locksmiths", "emergency lockouts;lock changes;key cutting;safe opening;window locks", "We can usually get you back into your home within thirty minutes.|Locked out? We normally have you inside again within half an hour."),
    ("florist", "Flowers", "wedding flowers;funeral tributes;same-day delivery;seasonal bouquets;house plants", "Every bouquet is arranged by hand on the day it is delivered.|Bouquets are arranged by hand on the day they go out."),
    ("dry cleaner", "Dry Cleaners", "dry cleaning;shirt laundering;alterations and repairs;wedding dress cleaning;leather and suede care", "Drop off by ten and collect your clothes the same afternoon.|Bring items in before 10 a.m. and pick them up that afternoon."),
    ("accounting firm", "Accounting", "tax returns;bookkeeping;payroll;business start-up advice;financial planning", "We help small businesses and families keep their finances simple.|Our job is keeping money matters simple for families and small firms."),
    ("physiotherapy practice", "Physiotherapy", "sports injuries;back and neck pain;rehabilitation after surgery;massage therapy;home exercise plans", "Most patients notice an improvement after two or three sessions.|The majority of patients feel better after two or three appointments."),
    ("pet grooming salon", "Pet Grooming", "bath and brush;breed-specific cuts;nail trimming;ear cleaning;flea treatment", "Nervous dogs get extra time and a quiet room.|Anxious dogs are given more time in a calm, quiet room."),
    ("driving school", "Driving School", "lessons for beginners;intensive courses;motorway lessons;test preparation;refresher lessons", "Our pass rate is well above the national average.|Our learners pass far more often than the national average."),
    ("bike shop", "Cycles", "new and used bikes;repairs and servicing;bike fitting;e-bikes;kids' bikes", "We service any bike, whatever the brand and wherever you bought it.|Any brand, bought anywhere: we will service it."),
    ("roofing contractor", "Roofing", "roof repairs;new roofs;gutter cleaning;chimney repairs;storm damage", "All our work comes with a ten-year guarantee.|Every job we do is guaranteed for ten years."),
    ("coffee shop", "Coffee House", "espresso drinks;pour-over coffee;homemade cakes;breakfast sandwiches;free Wi-Fi", "We roast our own beans in small batches each week.|Our beans are roasted here in small batches every week."),
    ("tutoring centre", "Tutoring", "maths and science tutoring;reading support;exam preparation;homework club;online lessons", "Small groups of no more than four students get real attention.|With four students per group at most, everyone gets proper attention."),
    ("optician", "Opticians", "eye tests;glasses and frames;contact lenses;children's eye care;sports eyewear", "An eye test takes about thirty minutes and can spot problems early.|A thirty-minute eye exam can catch problems before you notice them."),
    ("landscaping company", "Landscapes", "garden design;lawn care;patios and paths;tree surgery;hedge trimming", "We design gardens that look good all year and are easy to care for.|Our gardens look great in every season and need little upkeep."),
    ("tailor", "Tailoring", "suits made to measure;alterations;hemming;wedding wear;repairs", "A made-to-measure suit takes about four weeks and two fittings.|Expect roughly four weeks and two fittings for a bespoke suit."),
    ("pharmacy", "Pharmacy", "prescriptions;flu vaccinations;blood pressure checks;travel health advice;home delivery", "Our pharmacists can advise on minor illnesses without an appointment.|Walk in and talk to a pharmacist about minor ailments, no appointment needed."),
    ("martial arts school", "Martial Arts", "karate for children;adult kickboxing;self-defence courses;family classes;competition training", "Classes build confidence, discipline and fitness at any age.|At any age, training builds fitness, focus and self-confidence."),
    ("electrician", "Electrical", "rewiring;fuse box upgrades;lighting installation;EV charger installation;safety inspections", "All our electricians are fully qualified and insured.|Every electrician on our team is certified and insured."),
    ("bookshop", "Books", "new and second-hand books;children's corner;book club;special orders;author events", "If we don't have a book, we can usually get it within two days.|Anything not on our shelves can normally be ordered in two days."),
    ("cleaning service", "Cleaning", "regular home cleaning;deep cleans;end-of-tenancy cleaning;office cleaning;oven cleaning", "Our cleaners bring their own eco-friendly products.|We bring our own environmentally friendly cleaning supplies."),
    ("music school", "Music School", "piano lessons;guitar lessons;singing lessons;drum lessons;music theory", "Pupils can take part in two concerts a year.|Twice a year our students perform in a concert."),
    ("pizzeria", "Pizzeria", "wood-fired pizza;fresh pasta;salads;takeaway;catering", "Our dough rests for 48 hours before it goes into the oven.|We let the dough rise for two days before baking."),
    ("chiropractor", "Chiropractic", "spinal adjustments;posture assessments;sports chiropractic;pregnancy care;headache treatment", "Your first visit includes a full assessment and a treatment plan.|At your first appointment we do a full check and agree on a plan."),
    ("garden centre", "Garden Centre", "plants and trees;compost and tools;garden furniture;seasonal displays;cafe", "Our staff are trained gardeners who can help you choose the right plants.|The team are experienced gardeners who will help you pick suitable plants."),
    ("removals company", "Removals", "house moves;office moves;packing service;storage;piano moving", "We wrap and protect your furniture at no extra cost.|Furniture is wrapped and protected for free."),
    ("photography studio", "Photography", "family portraits;newborn shoots;weddings;headshots;pet portraits", "Sessions are relaxed, and you choose your favourite photos on the day.|We keep shoots relaxed, and you pick your best pictures right afterwards."),
    ("computer repair shop", "Computer Repair", "laptop screen replacement;virus removal;data recovery;upgrades;phone repairs", "Most repairs are finished within 24 hours.|We fix most devices within a day."),
    ("day care centre", "Day Care", "care for babies and toddlers;preschool programme;outdoor play;healthy meals;after-school club", "Our staff are trained in first aid and early childhood education.|Everyone on the team has first-aid and early-years training."),
    ("hardware store", "Hardware", "tools;paint mixing;key cutting;garden supplies;plumbing and electrical parts", "Ask our staff for advice on any home project.|Whatever your project at home, our staff are happy to advise."),
    ("swimming school", "Swim School", "baby and toddler swimming;children's lessons;adult beginners;stroke improvement;private lessons", "Our warm teaching pool is perfect for young children.|The heated teaching pool is ideal for little ones."),
    ("print shop", "Print Shop", "business cards;flyers and posters;banners;wedding invitations;photocopying", "Most orders are ready the next working day.|The majority of jobs are ready by the next business day."),
    ("butcher", "Butchers", "free-range meat;homemade sausages;marinated cuts;barbecue packs;game in season", "All our meat comes from farms within thirty miles.|Every cut comes from farms less than thirty miles away."),
    ("beauty salon", "Beauty", "facials;manicures and pedicures;waxing;eyelash extensions;massages", "Relax in our calm treatment rooms with a cup of herbal tea.|Unwind in a quiet treatment room with a herbal tea."),
    ("carpet cleaning service", "Carpet Care", "carpet cleaning;upholstery cleaning;stain removal;rug cleaning;pet odour treatment", "Carpets are dry in about four hours.|Most carpets dry in roughly four hours."),
)  # fmt: skip

# (task, why, tools, steps, a warning)
HOWTOS = (
    ("replace a bike inner tube", "A flat tyre does not have to end your ride; you can fix it at the roadside.|Fixing a puncture at the roadside is easy once you know how.", "tyre levers;a new inner tube;a pump", "Remove the wheel and let any remaining air out of the tube.|Take the wheel off and release the air left in the tube.;Use the tyre levers to lift one side of the tyre off the rim.|Work one edge of the tyre over the rim with the levers.;Pull out the old tube and check inside the tyre for glass or thorns.|Take the old tube out and feel inside the tyre for anything sharp.;Fit the new tube, push the tyre back on and pump it to the pressure printed on the sidewall.|Put in the new tube, refit the tyre, and inflate it to the pressure shown on the tyre.", "Never use a screwdriver instead of tyre levers; it can tear the tube.|Do not lever the tyre with a screwdriver, as it can rip the new tube."),
    ("unclog a kitchen sink", "Most blocked sinks can be cleared without calling a plumber.|You can clear the majority of sink blockages yourself, no plumber required.", "a plunger;a bucket;baking soda and vinegar;an adjustable wrench", "Remove standing water with a cup and bucket.|Scoop out the standing water into a bucket.;Pour in half a cup of baking soda followed by a cup of vinegar and wait fifteen minutes.|Add half a cup of baking soda, then a cup of vinegar, and leave it fifteen minutes.;Flush with a kettle of hot water, then use the plunger with firm strokes.|Pour a kettle of hot water down, then plunge hard several times.;If it is still blocked, unscrew the trap under the sink and clean it out.|Still stuck? Undo the U-bend under the sink and clear it by hand.", "Avoid chemical drain cleaners in old pipes; they can damage them.|Chemical drain cleaners can harm older pipes, so skip them."),
    ("reset a home Wi-Fi router", "Restarting or resetting your router fixes most connection problems.|Many internet problems disappear after a router restart or reset.", "a paperclip;your internet provider's login details", "First try unplugging the router for thirty seconds and plugging it back in.|Start simply: unplug the router, wait thirty seconds, and plug it in again.;If that fails, hold the reset button with a paperclip for ten seconds.|If the problem remains, press and hold the reset button for ten seconds using a paperclip.;Wait for the lights to settle, then connect to the default network on the label.|When the lights stop blinking, join the default network printed on the sticker.;Log in to the admin page and set a new network name and password.|Open the admin page and choose a new Wi-Fi name and password.", "A full reset erases all your settings, so note them down first.|Write down your settings before a reset, because it wipes them all."),
    ("descale a coffee machine", "Limescale slows your machine and makes coffee taste bitter.|Scale build-up makes coffee bitter and the machine slower.", "descaling solution or white vinegar;water;a large jug", "Empty the water tank and fill it with descaling solution mixed with water.|Fill the empty tank with water and descaler.;Run half the tank through the machine into a jug, then let it sit for twenty minutes.|Brew half of the tank into a jug and leave the machine to stand twenty minutes.;Run the rest of the solution through.|Then put the remaining solution through the machine.;Rinse by running two full tanks of clean water.|Flush it out with two tanks of fresh water.", "Check your manual; some machines have their own descaling program.|Some models have a built-in descaling mode, so look at the manual first."),
    ("paint a room", "A fresh coat of paint is the cheapest way to transform a room.|Nothing changes a room for less money than new paint.", "paint;a roller and tray;brushes;masking tape;dust sheets;filler", "Move furniture away from the walls and cover the floor with dust sheets.|Pull furniture to the middle and protect the floor with sheets.;Fill any holes, sand them smooth and tape the edges.|Fill cracks and holes, sand them flat, and mask off edges.;Cut in around the edges with a brush, then roll the walls in a W pattern.|Paint the edges with a brush first, then cover the walls with a roller in W shapes.;Let it dry for four hours and apply a second coat.|After four hours of drying, put on a second coat.", "Keep the room ventilated while you paint and while it dries.|Open the windows during painting and drying."),
    ("change a car tyre", "Knowing how to change a tyre can save you a long wait for roadside help.|Being able to swap a tyre yourself saves waiting hours for a breakdown truck.", "the spare wheel;a jack;a wheel brace;gloves", "Park on flat ground, put the handbrake on and switch on your hazard lights.|Stop somewhere level, apply the handbrake and turn on the hazards.;Loosen the wheel nuts half a turn before lifting the car.|Before jacking, undo each wheel nut by half a turn.;Jack the car up, remove the nuts and swap the wheel.|Raise the car, take off the nuts, and replace the wheel.;Tighten the nuts in a star pattern, lower the car and tighten them again.|Do the nuts up in a criss-cross order, lower the car, then tighten fully.", "Never put any part of your body under a car held up only by a jack.|Do not reach under a car that is resting on a jack alone."),
    ("start a vegetable garden", "You do not need much space to grow your own vegetables.|Growing your own food is possible even in a small garden.", "a spade;compost;seeds or seedlings;a watering can;garden twine", "Choose a spot that gets at least six hours of sun a day.|Pick a place with six or more hours of sunlight daily.;Dig over the soil and mix in a thick layer of compost.|Turn the soil and work in plenty of compost.;Start with easy crops such as lettuce, radishes, beans and courgettes.|Begin with simple vegetables like lettuce, radishes, beans and courgettes.;Water in the morning and keep the beds free of weeds.|Water early in the day and pull weeds regularly.", "Do not plant everything at once; sow a little every two weeks for a steady harvest.|Stagger your sowing every fortnight so you are not swamped with produce all at once."),
    ("clean a cast iron pan", "Cast iron lasts for generations if you clean it the right way.|Cared for properly, a cast iron pan will outlive you.", "hot water;a stiff brush;coarse salt;vegetable oil;paper towels", "Clean the pan while it is still warm, using hot water and a brush.|Scrub the pan with a brush and hot water while it is warm.;For stuck-on food, scrub with a handful of coarse salt.|Use coarse salt as a scrub for anything stubborn.;Dry it completely on the hob over low heat.|Put it on a low flame until completely dry.;Rub a thin layer of oil over the surface with a paper towel.|Wipe a very thin coat of oil all over with kitchen paper.", "Never leave cast iron soaking in water, or it will rust.|Soaking causes rust, so do not leave it in the sink."),
    ("hang a picture frame", "Hanging a picture straight takes a few minutes with the right tools.|With the right tools, a level picture takes only minutes.", "a tape measure;a pencil;a spirit level;a hammer;picture hooks", "Hold the picture against the wall and mark the top edge in pencil.|Position the frame on the wall and pencil a mark at its top.;Measure the distance from the top of the frame to the hanging wire.|Measure how far the wire sits below the top of the frame.;Mark the hook position that distance below your first mark.|Make a second mark that far below the first.;Hammer in the hook and hang the picture, checking it with the level.|Nail in the hook, hang the frame and check it with a spirit level.", "Use a detector to check for pipes and cables before you hammer.|Scan the wall for wires and pipes before putting in a nail."),
    ("bleed a radiator", "A radiator that is cold at the top has air trapped inside it.|If the top of a radiator stays cold, air is stuck in it.", "a radiator key;an old cloth;a small bowl", "Turn off the heating and let the radiators cool down.|Switch the heating off and wait for the radiators to cool.;Put the key in the valve at the top corner and hold a cloth underneath.|Fit the key into the small valve at the top corner, with a cloth below it.;Turn the key a quarter turn until you hear hissing.|Open it a quarter turn; you will hear air escaping.;Close the valve as soon as water starts to drip.|When water begins to come out, shut the valve.", "Check the boiler pressure afterwards and top it up if needed.|Afterwards, look at the boiler pressure and refill if it has dropped."),
    ("make cold brew coffee", "Cold brew is smooth, less bitter and very easy to make at home.|Making smooth, low-bitterness cold brew at home is simple.", "coarsely ground coffee;cold water;a large jar;a sieve;a coffee filter", "Mix one part coffee with eight parts cold water in a jar.|Combine coffee and cold water at a ratio of one to eight in a jar.;Cover and leave it in the fridge for 12 to 18 hours.|Put the lid on and refrigerate it for 12 to 18 hours.;Strain through a sieve lined with a coffee filter.|Pour it through a sieve with a paper filter inside.;Dilute with water or milk to taste and serve over ice.|Add water or milk to your taste and pour over ice.", "Fine grounds make it muddy; ask for a coarse grind.|Use a coarse grind, because fine coffee makes it cloudy."),
    ("train a puppy to sit", "Sit is the first command most puppies learn, and it takes only a few days.|Most puppies learn sit first, usually within a few days.", "small treats;a quiet room;patience", "Hold a treat close to your puppy's nose.|Let the puppy sniff a treat held near its nose.;Move your hand up so its head follows and its bottom goes down.|Raise your hand so the head tilts up and the rear drops.;Say sit as soon as it sits, and give the treat right away.|The moment it sits, say sit and reward it immediately.;Repeat a few times a day in short sessions.|Practise several times daily, keeping sessions short.", "Never push your puppy's bottom down; let it learn the movement itself.|Do not force the puppy into position; it needs to work it out."),
    ("back up your phone", "If your phone is lost or broken, a backup keeps your photos and contacts safe.|A backup means a lost or broken phone does not take your photos and contacts with it.", "Wi-Fi;your cloud account login;a charger", "Connect to Wi-Fi and plug in the charger.|Join a Wi-Fi network and put the phone on charge.;Open the settings and find the backup section.|Go to settings and look for the backup option.;Turn on automatic backup for photos, contacts and messages.|Switch on automatic backups for messages, contacts and photos.;Start a backup now and wait until it finishes.|Tap back up now and let it complete.", "Check once a month that your latest backup is recent.|Every month, make sure the most recent backup is up to date."),
    ("sharpen a kitchen knife", "A sharp knife is safer than a blunt one because it does not slip.|Sharp knives are actually safer, since they are less likely to slip.", "a whetstone;water;a towel;a honing steel", "Soak the whetstone in water for ten minutes.|Leave the stone in water for ten minutes.;Hold the blade at about a 20-degree angle to the stone.|Keep the knife at roughly twenty degrees against the stone.;Draw the blade across the stone ten times on each side.|Pull each side of the blade across the stone ten times.;Finish with a few strokes on the honing steel.|Complete the job with a few passes on a honing rod.", "Keep your fingers behind the edge at all times.|Always keep your fingers away from the edge."),
    ("repot a house plant", "Repotting gives a root-bound plant room to grow again.|A plant with crowded roots will grow again once it is repotted.", "a pot one size larger;potting compost;a trowel;newspaper", "Water the plant an hour before repotting.|Give the plant a drink an hour beforehand.;Tip it out of its old pot and gently loosen the roots.|Ease it out of the old pot and tease the roots apart.;Put fresh compost in the new pot and set the plant at the same depth.|Add new compost to the bigger pot and plant it at its old depth.;Fill around the sides, firm gently and water well.|Fill the gaps, press down lightly and water thoroughly.", "Choose a pot with drainage holes so the roots do not rot.|Make sure the pot has drainage holes, or the roots may rot."),
    ("fix a dripping tap", "A dripping tap can waste thousands of litres a year, and the fix is cheap.|Leaky taps waste thousands of litres of water every year, and repairing one costs little.", "an adjustable spanner;a screwdriver;a replacement washer", "Turn off the water supply under the sink.|Shut off the water at the valve below the sink.;Remove the tap handle and unscrew the valve.|Take off the handle and undo the valve body.;Replace the worn rubber washer with a new one of the same size.|Swap the old washer for a new one that matches its size.;Reassemble the tap and turn the water back on.|Put the tap back together and restore the water supply.", "Put the plug in the sink so small parts do not go down the drain.|Plug the sink first so you do not lose any small parts."),
    ("wax a snowboard", "A freshly waxed board is faster and easier to turn.|Fresh wax makes a snowboard quicker and easier to control.", "an iron;snowboard wax;a plastic scraper;a brush", "Clean the base and let it dry.|Wipe the base clean and leave it to dry.;Melt the wax onto the base with the iron, moving it constantly.|Drip wax onto the base using the iron, keeping it moving.;Let it cool for thirty minutes.|Leave it half an hour to cool.;Scrape off the excess wax from tip to tail, then brush the base.|Scrape away extra wax from nose to tail and brush the base.", "Never leave the iron in one spot; it can burn the base.|Keep the iron moving, or you may burn the base."),
    ("make your own compost", "Composting turns kitchen scraps into rich food for your garden.|Compost turns vegetable peelings into rich soil for the garden.", "a compost bin;kitchen scraps;dry leaves or cardboard;a garden fork", "Place the bin on bare soil in a sunny or half-shaded spot.|Put the bin directly on soil, somewhere with sun or partial shade.;Add green waste such as peelings and grass with brown waste like leaves and cardboard.|Mix green material like peelings and grass cuttings with brown material like leaves and card.;Turn the heap with a fork every few weeks.|Every few weeks, mix the heap with a fork.;After six to twelve months, use the dark crumbly compost at the bottom.|In six months to a year, dig out the dark, crumbly compost from the bottom.", "Leave out meat and dairy, which attract rats.|Do not add meat or dairy, because they bring rats."),
    ("clean a laptop keyboard", "Crumbs and dust under the keys can make them stick.|Dust and crumbs trapped under keys can cause sticking.", "compressed air;isopropyl alcohol;cotton swabs;a microfibre cloth", "Shut down the laptop and unplug it.|Turn the laptop off and disconnect the charger.;Turn it upside down and gently shake out loose crumbs.|Hold it upside down and shake out any loose debris.;Blow compressed air between the keys at an angle.|Spray air between the keys from an angle.;Wipe the keys with a swab dipped in a little alcohol.|Clean the keys using a cotton swab lightly dampened with alcohol.", "Never spray liquid directly onto the keyboard.|Do not spray any liquid straight onto the keys."),
    ("reseal a bathtub", "Fresh sealant keeps water out of the walls and stops mould.|New caulk stops water getting into the walls and prevents mould.", "silicone sealant;a caulking gun;a utility knife;masking tape;rubbing alcohol", "Cut away the old sealant and clean the joint with alcohol.|Remove the old caulk with a knife and wipe the gap with alcohol.;Fill the tub with water so it settles to its lowest point.|Run water into the bath so it sits as low as it will.;Apply tape on both sides of the joint and run a steady bead of sealant.|Mask both edges of the joint and lay a smooth, even bead.;Smooth it with a wet finger, remove the tape and let it cure for 24 hours.|Smooth the bead with a damp finger, peel off the tape and wait a day for it to cure.", "Do not use the shower until the sealant has fully cured.|Keep the bath dry until the sealant is completely set."),
    ("jump-start a car", "A flat battery is easy to fix if you have jump leads and another car.|With jump leads and a second car, a dead battery is a quick fix.", "jump leads;a second car with a working battery", "Park the cars close together and turn off both engines.|Bring the two cars near each other and switch both engines off.;Connect red to the flat battery's positive terminal, then to the good battery's positive.|Attach a red clamp to the dead battery's positive post, and the other red clamp to the good one's positive.;Connect black to the good battery's negative and the other end to bare metal on the dead car.|Clip black to the negative post of the good battery and to an unpainted metal part of the other car.;Start the working car, wait a few minutes, then start the dead one.|Run the good car for a few minutes, then try starting the dead car.", "Remove the leads in reverse order, and keep the engine running for twenty minutes.|Disconnect in the opposite order and keep the engine on for twenty minutes afterwards."),
    ("make a monthly budget", "A simple budget shows where your money goes each month.|A basic budget tells you where each month's money ends up.", "your bank statements;a spreadsheet or notebook;a calculator", "Add up your monthly income after tax.|Total your take-home pay for the month.;List your fixed costs such as rent, bills and loan payments.|Write down regular costs like rent, utilities and loan repayments.;Track everything else you spend for one month.|For a month, record every other purchase.;Set limits for each category and a goal for savings.|Give each category a limit and set a savings target.", "Review it every month; a budget only works if you keep using it.|Look at it monthly, because a budget only helps if you actually use it."),
    ("clean windows without streaks", "Streak-free windows need only a few cheap supplies.|You can get streak-free glass with a few inexpensive supplies.", "a bucket;warm water;washing-up liquid;a squeegee;a microfibre cloth", "Mix warm water with a few drops of washing-up liquid.|Add a few drops of dish soap to warm water.;Wash the glass with a sponge or cloth.|Clean the window with the soapy water.;Pull the squeegee down in overlapping strokes, wiping the blade each time.|Drag the squeegee downward in overlapping lines and wipe the blade after each one.;Dry the edges with a microfibre cloth.|Finish the edges with a dry microfibre cloth.", "Avoid cleaning windows in direct sun; they dry too fast and streak.|Do not clean them in bright sunshine, because quick drying leaves streaks."),
    ("brew beer at home", "Brewing your first beer is easier than most people think.|Making your first batch of beer is simpler than you might expect.", "a fermenting bucket with an airlock;a malt extract kit;brewing yeast;sanitiser;bottles and caps", "Sanitise everything that will touch the beer.|Clean and sanitise every piece of equipment.;Dissolve the malt extract in hot water and top up with cold water.|Mix the malt extract with hot water, then add cold water.;Add the yeast once the liquid is below 24 degrees and seal the bucket.|When it has cooled under 24 degrees, pitch the yeast and close the lid.;Ferment for two weeks, then bottle with a little sugar and wait two more weeks.|Leave it two weeks, bottle it with a bit of sugar, and wait another fortnight.", "Poor cleaning is the most common reason a batch goes wrong.|Most failed batches come down to dirty equipment."),
    ("replace a light switch", "Replacing a switch is a simple job if you follow basic safety steps.|Swapping a switch is straightforward when you follow basic safety rules.", "a screwdriver;a voltage tester;a new switch", "Switch off the power at the fuse box.|Turn off the circuit at the consumer unit.;Unscrew the old switch plate and check the wires with a tester.|Remove the faceplate and test the wires to make sure they are dead.;Note which wire goes where, then disconnect them.|Take a photo of the wiring and then undo the wires.;Connect the new switch in the same way and screw it to the wall.|Wire the new switch the same way and fix it in place.", "If you are unsure about anything, call a qualified electrician.|When in doubt, get a licensed electrician."),
    ("set up a fish tank", "Setting up an aquarium properly keeps your fish healthy.|A proper setup is the key to healthy fish.", "a tank;a filter;a heater;gravel;water conditioner;a test kit", "Rinse the gravel and place it in the tank.|Wash the gravel and spread it across the bottom.;Fill with water, add conditioner, and switch on the filter and heater.|Add water and conditioner, then turn on the heater and filter.;Let the tank run for four weeks to build up good bacteria.|Run the tank for a month so helpful bacteria can grow.;Test the water, then add a few fish at a time.|Check the water with the kit, then introduce fish gradually.", "Adding too many fish at once is the most common beginner mistake.|The classic beginner error is adding lots of fish together."),
    ("iron a shirt", "A well-ironed shirt makes a good impression.|A crisp shirt makes a strong impression.", "an iron;an ironing board;a spray bottle of water", "Iron the collar first, working from the points inward.|Begin with the collar, from the tips toward the middle.;Do the cuffs and then the sleeves.|Move on to the cuffs and then each sleeve.;Iron the back, then the two front panels.|Next press the back, then both fronts.;Hang it up straight away so it does not crease.|Put it on a hanger right away to avoid new creases.", "Slightly damp fabric irons much more easily.|Fabric that is a little damp is far easier to iron."),
    ("write a cover letter", "A good cover letter gets you noticed before the interview.|The right cover letter gets your application noticed.", "the job advert;your CV;a word processor", "Address it to a named person if possible.|Where you can, address it to a specific person.;Open with the job you are applying for and why you want it.|Start by naming the role and saying why it interests you.;Give two or three examples that match the skills in the advert.|Show two or three examples that fit the skills they ask for.;Close by thanking the reader and saying you look forward to hearing from them.|End by thanking them and saying you hope to hear back.", "Keep it to one page and check the spelling twice.|Stick to a single page and proofread it twice."),
    ("build a campfire", "A good campfire is built in layers, from small to large.|Build a campfire in layers, starting small and going bigger.", "tinder such as dry grass;kindling;firewood;matches;a bucket of water", "Clear a spot down to bare earth, away from trees and tents.|Choose an area of bare ground far from tents and branches.;Place a loose pile of tinder in the centre.|Put a small loose bundle of tinder in the middle.;Lean kindling over it in a cone and light the tinder.|Stack kindling around it like a tent and set the tinder alight.;Add larger logs once the kindling is burning well.|When the kindling catches, add bigger pieces of wood.", "Always put the fire out completely with water before you leave.|Drown the fire fully with water before walking away."),
    ("clean a dishwasher filter", "A dirty filter leaves food on your plates and makes the dishwasher smell.|If the filter is dirty, plates come out grimy and the machine smells.", "an old toothbrush;warm soapy water;a towel", "Pull out the bottom rack.|Slide the lower rack out.;Twist the filter anticlockwise and lift it out.|Turn the filter to the left and remove it.;Scrub it in warm soapy water with the toothbrush.|Clean it with a toothbrush in warm, soapy water.;Rinse it and twist it back into place.|Rinse well and lock it back in.", "Do this once a month to keep the dishwasher working well.|Monthly cleaning keeps the machine running properly."),
    ("grow herbs on a windowsill", "Fresh herbs on the windowsill save money and taste better than dried ones.|Growing herbs indoors is cheaper than buying them and tastes far better than dried.", "small pots with drainage;potting compost;herb seeds;a saucer for each pot", "Fill the pots with compost and water them.|Put compost in the pots and moisten it.;Sprinkle a few seeds on top and cover with a thin layer of compost.|Scatter some seeds and add a light covering of compost.;Place the pots on a sunny windowsill.|Stand them on a bright windowsill.;Water when the top of the soil feels dry.|Give them water whenever the surface feels dry.", "Basil, parsley and chives are the easiest herbs to start with.|Easy herbs for beginners are basil, parsley and chives."),
    ("remove a red wine stain", "Act quickly and most red wine stains come out completely.|Move fast and a red wine spill will usually come out entirely.", "paper towels;salt;cold water;washing-up liquid", "Blot the stain with paper towels; do not rub.|Dab, don't rub, the spill with kitchen paper.;Cover it with salt to draw out the wine.|Pour salt over it to soak up the wine.;Rinse from the back with cold water.|Run cold water through the fabric from behind.;Work in a little washing-up liquid and wash as usual.|Rub in some dish soap and launder normally.", "Never use hot water, which sets the stain.|Hot water fixes the stain, so avoid it."),
    ("defrost a freezer", "A freezer full of ice uses more electricity and holds less food.|Ice build-up makes a freezer cost more to run and fit less food.", "towels;a cool box;a bowl of hot water;a plastic scraper", "Move the food into a cool box and turn off the freezer.|Put the food in a cool box and switch the freezer off.;Put towels on the floor and a bowl of hot water inside.|Lay towels below it and place hot water inside to speed things up.;Scrape away loose ice with the plastic scraper.|Remove loosened ice with a plastic scraper.;Dry it inside, switch it back on and return the food after an hour.|Wipe it dry, turn it on again, and put the food back an hour later.", "Never use a knife to chip away ice; you might puncture the cooling pipes.|Do not hack at the ice with a knife, or you may pierce the pipes."),
    ("install a smoke alarm", "A working smoke alarm greatly improves your chance of surviving a house fire.|Having a smoke alarm that works makes it far more likely you survive a house fire.", "a smoke alarm;a drill;screws and wall plugs;a stepladder", "Choose a spot on the ceiling in the middle of the hall or landing.|Pick a place on the ceiling in the centre of a hallway or landing.;Mark the holes using the base plate as a template.|Hold up the mounting plate and mark where the screws go.;Drill the holes, fit the plugs and screw on the plate.|Drill, insert wall plugs and fix the plate in place.;Twist the alarm onto the plate and press the test button.|Attach the alarm to the plate and press test.", "Test it monthly and replace the alarm every ten years.|Press the test button once a month, and fit a new alarm every ten years."),
    ("plan a road trip", "A little planning makes a long drive much more fun.|Some planning turns a long drive into a great trip.", "a map or navigation app;a checklist;a car emergency kit", "Choose your route and a few stops you want to see.|Pick the route and some places you would like to visit.;Plan breaks every two hours to stay alert.|Schedule a stop every couple of hours so you stay fresh.;Check the tyres, oil and coolant before you leave.|Before setting off, check tyre pressure, oil and coolant.;Pack snacks, water and an emergency kit.|Bring water, snacks and a safety kit.", "Book accommodation in advance during the summer holidays.|In peak season, reserve places to stay ahead of time."),
    ("knit a scarf", "A simple garter-stitch scarf is the perfect first knitting project.|For a first project, nothing beats a plain garter-stitch scarf.", "two balls of chunky yarn;10 mm knitting needles;scissors;a darning needle", "Cast on 25 stitches.|Begin by casting on twenty-five stitches.;Knit every row until the scarf is as long as you want.|Keep knitting each row until it reaches the length you like.;Cast off loosely.|Bind off without pulling too tight.;Weave in the loose ends with the darning needle.|Use a darning needle to hide the loose yarn ends.", "Chunky yarn and big needles make quick progress and visible stitches.|Thick yarn and large needles help you see stitches and finish fast."),
    ("wash a wool jumper", "Wool needs gentle care, or it will shrink and felt.|Handle wool gently or it shrinks and goes stiff.", "a basin;wool wash;two towels", "Fill a basin with lukewarm water and a little wool wash.|Put lukewarm water and some wool detergent in a basin.;Soak the jumper for ten minutes, gently squeezing it.|Let it soak ten minutes, pressing it softly now and then.;Rinse in water of the same temperature.|Rinse it in water that is just as warm.;Roll it in a towel to remove water, then dry it flat.|Press out the water by rolling it in a towel, and lay it flat to dry.", "Never wring wool or hang it up wet, or it will stretch.|Wringing or hanging wet wool pulls it out of shape."),
    ("prepare for a job interview", "Good preparation is the easiest way to feel confident in an interview.|Preparing well is the surest route to confidence at interview.", "the job description;notes on the company;a list of questions", "Research the company's products, values and recent news.|Read up on the company's work, values and latest news.;Prepare examples that show the skills in the job description.|Get stories ready that demonstrate the skills they list.;Practise answers out loud with a friend.|Rehearse your answers aloud with someone you know.;Prepare two or three questions to ask at the end.|Have a couple of questions ready for the end.", "Plan your route and arrive ten minutes early.|Work out how to get there and aim to arrive ten minutes ahead."),
    ("clean a barbecue grill", "A clean grill gives better flavour and fewer flare-ups.|Cleaner grills mean tastier food and fewer flare-ups.", "a grill brush;warm soapy water;a bucket;a cloth", "Heat the grill for fifteen minutes to burn off residue.|Run the grill hot for fifteen minutes to loosen residue.;Scrub the grates with the brush while they are warm.|Brush the grates while still warm.;Empty the grease tray and wash it in soapy water.|Remove the grease tray and wash it.;Wipe the outside with a damp cloth.|Clean the exterior with a wet cloth.", "Check the brush for loose bristles, which can end up in food.|Loose wire bristles can get into food, so inspect the brush."),
    ("teach a child to ride a bike", "Most children can learn to ride in an afternoon with the right approach.|With the right method, many kids learn to cycle in a single afternoon.", "a bike that fits;a helmet;a quiet flat area", "Lower the saddle so your child can put both feet flat on the ground.|Drop the seat so both feet reach the ground flat.;Remove the pedals and let them scoot and glide.|Take the pedals off and let them push along and coast.;Put the pedals back once they can glide for a few seconds.|Refit the pedals when they can glide for several seconds.;Hold the back of their shoulders, not the bike, as they start pedalling.|As they begin to pedal, steady their shoulders rather than the bike.", "Keep sessions short and stop while it is still fun.|Short sessions work best; finish before they get tired."),
)  # fmt: skip

# (title, background, symptom, what was tried, the question)
FORUM = (
    ("Laptop fan constantly running loud|Why is my laptop fan always so loud?", "I have a {brand} laptop that is about {years} years old.|My laptop is a {brand}, roughly {years} years old.", "Lately the fan spins at full speed even when I only have a browser open.|These days the fan runs flat out even with just a browser window open.", "cleaned the vents with compressed air;checked task manager for heavy programs;updated the BIOS", "Is it time to replace the thermal paste, or is something else going on?|Should I redo the thermal paste, or could it be something different?"),
    ("Sourdough not rising|My sourdough bread won't rise", "I started baking sourdough {weeks} weeks ago with a starter I made myself.|I made my own starter and have been baking sourdough for {weeks} weeks.", "Every loaf comes out flat and dense, even though the starter bubbles.|My loaves are always dense and flat, although the starter looks bubbly.", "fed the starter twice a day;let the dough rise longer;used bread flour instead of plain", "Is my starter not strong enough yet, or am I shaping it wrong?|Is the starter still too weak, or is my shaping the problem?"),
    ("Car battery keeps dying overnight|Battery flat every morning, what could drain it?", "My {brand} hatchback is {years} years old and the battery is new.|I drive a {years}-year-old {brand} hatchback and just put in a new battery.", "If I leave it for two nights, it will not start.|After two nights parked it will not start at all.", "checked that all lights are off;had the alternator tested;unplugged the dash cam", "How do I find what is draining the battery?|What is the best way to track down the drain?"),
    ("Wi-Fi keeps dropping on one laptop|Only my laptop loses Wi-Fi", "Every other device in the house stays connected, but my {brand} laptop drops Wi-Fi several times an hour.|All our phones and tablets are fine; only my {brand} laptop loses the connection a few times an hour.", "It started about {weeks} weeks ago after an update.|This began roughly {weeks} weeks ago, right after an update.", "reinstalled the network driver;turned off power saving for the adapter;forgot and re-added the network", "Could the Wi-Fi card be failing, or is it still a software problem?|Is the wireless card dying, or is this still software?"),
    ("Tomato plant leaves turning yellow|Why are my tomato leaves going yellow?", "I am growing six tomato plants in pots on a balcony, my first try at vegetables.|This is my first year growing veg: six tomatoes in containers on my balcony.", "The lower leaves are turning yellow and some have brown spots.|The bottom leaves are going yellow, and a few have brown spots.", "watered less often;added tomato feed;removed the worst leaves", "Is this a disease, or are they just hungry?|Is it a disease, or do they simply need more food?"),
    ("Cat stopped using litter box|My cat suddenly won't use the litter tray", "Our cat is {years} years old and has always been perfect with the litter tray.|We have a {years}-year-old cat who never had any litter problems before.", "For the past week she has been going on the bathroom rug instead.|This week she keeps going on the bath mat instead of the tray.", "cleaned the tray more often;tried a different litter;moved the tray to a quieter spot", "Should I take her to the vet, or could this be behavioural?|Is this a vet issue, or something behavioural?"),
    ("Dishwasher leaves white film on glasses|Cloudy glasses after every dishwasher cycle", "Our {brand} dishwasher is {years} years old and worked fine until recently.|We have had our {brand} dishwasher for {years} years with no trouble until now.", "Now all the glasses come out with a white, cloudy film.|Every glass now comes out cloudy and white.", "used rinse aid;cleaned the filter;ran a cycle with vinegar", "Is this hard water or etching, and can it be fixed?|Is it limescale or etched glass, and is there a fix?"),
    ("Knee pain after running|Pain on the outside of my knee when I run", "I started running {weeks} weeks ago and was doing about 20 kilometres a week.|I took up running {weeks} weeks back and got up to roughly 20 km per week.", "Now the outside of my right knee hurts after about three kilometres.|Around the three-kilometre mark, the outer side of my right knee starts to hurt.", "took a week off;bought new running shoes;started stretching after runs", "Is this IT band syndrome, and how long should I rest?|Does this sound like IT band trouble, and how much rest do I need?"),
    ("Phone battery draining fast after update|Battery life terrible since the last update", "My {brand} phone is {years} years old and the battery used to last all day.|I have a {years}-year-old {brand} phone whose battery used to get me through the day.", "Since last week's update it is empty by lunchtime.|Since the update last week it runs out before lunch.", "turned off background refresh;lowered the screen brightness;restarted the phone", "Is this a known bug, or is my battery finally worn out?|Is the update to blame, or is the battery just old?"),
    ("Baby won't sleep in crib|How do I get my baby to sleep in the cot?", "Our son is five months old and only falls asleep in our arms.|Our five-month-old will only fall asleep being held.", "As soon as we put him down in the crib he wakes up and cries.|The moment he goes into the cot he wakes and screams.", "warmed the sheet first;used white noise;put him down drowsy but awake", "What worked for you, and should we try sleep training?|What helped you, and is it time for sleep training?"),
    ("Washing machine smells bad|Smelly washing machine, how to fix?", "Our front-loading {brand} washing machine is about {years} years old.|We have a front-loader from {brand}, roughly {years} years old.", "The clothes come out smelling musty and the door seal smells awful.|Washing comes out with a musty smell, and the rubber seal stinks.", "ran a hot wash with vinegar;wiped the door seal;left the door open between washes", "How do I get rid of the smell for good?|What is a lasting fix for the smell?"),
    ("Leaking shower tray|Water getting under my shower tray", "We noticed a stain on the ceiling below our shower, which is {years} years old.|A stain has appeared on the ceiling under our {years}-year-old shower.", "The sealant looks fine, but water seems to get under the tray.|The silicone looks intact, yet water is getting beneath the tray.", "resealed around the tray;checked the waste pipe;stopped using the shower for a week", "Is this the trap or the tray itself, and can I fix it myself?|Is it the waste trap or the tray, and is it a DIY job?"),
    ("Dog barks at every noise|Dog barking at every sound outside", "Our rescue dog is about {years} years old and we have had her for {weeks} weeks.|We adopted a rescue dog {weeks} weeks ago; she is roughly {years} years old.", "She barks at every car door, footstep and delivery van.|Every footstep, car door or van outside sets her off barking.", "rewarded her for being quiet;added more walks;played background music", "How can we help her feel calmer at home?|What can we do so she relaxes at home?"),
    ("PC won't boot after installing new RAM|New RAM installed, now black screen", "I added two new memory sticks to my {years}-year-old {brand} desktop.|I put two more RAM sticks into my {brand} desktop, which is {years} years old.", "Now the fans spin but the screen stays black and nothing happens.|The fans come on, but the screen is black and it goes no further.", "reseated the sticks;tried one stick at a time;reset the BIOS", "Is the new RAM incompatible with my motherboard?|Could the memory be incompatible with the board?"),
    ("Hard water spots on car paint|How to remove water spots from car paint", "I washed my {brand} in the sun a few weeks ago and now it has white spots everywhere.|After washing my {brand} in full sun, white spots appeared all over the paint.", "They do not come off with normal car shampoo.|Regular car shampoo does not remove them.", "washed it again in the shade;used a quick detailer;tried a clay bar on one panel", "Do I need a polish, or is there a gentler way?|Will I have to polish, or is there a softer method?"),
    ("Learning guitar and my fingers hurt|Sore fingertips learning guitar", "I started learning guitar {weeks} weeks ago and practise about an hour a day.|I have been learning guitar for {weeks} weeks, playing about an hour daily.", "My fingertips are so sore that I can hardly press the strings.|My fingertips hurt so much I can barely hold the strings down.", "lowered the string height;switched to lighter strings;took two days off", "Is this normal, and how long until calluses form?|Is this just part of it, and when will calluses build up?"),
    ("Mould on bedroom wall|Black mould in bedroom corner", "We rent a flat and there is black mould in the corner of the bedroom behind the wardrobe.|In our rented flat, black mould is growing in the bedroom corner behind the wardrobe.", "It comes back a few weeks after we clean it.|Every time we clean it, it returns within a few weeks.", "cleaned it with mould spray;moved the wardrobe away from the wall;opened the windows every morning", "Is this condensation or damp, and should the landlord fix it?|Is it condensation or rising damp, and is it the landlord's job?"),
    ("Printer says offline|Printer shows offline but is connected", "My {brand} printer is on the same Wi-Fi as my laptop but always shows as offline.|The {brand} printer is on the same network as my laptop, yet it always appears offline.", "I can print from my phone, just not from the laptop.|Printing works from my phone but not from the laptop.", "restarted both devices;removed and re-added the printer;updated the driver", "What setting am I missing on the laptop?|Which laptop setting could be causing this?"),
    ("Lawn full of moss|Lawn taken over by moss", "Our back lawn is about half moss now and the grass looks thin.|Half of our back lawn has turned to moss, and the grass is sparse.", "The garden is shaded by trees for most of the day.|Trees shade the garden for most of the day.", "raked out the moss;put down moss killer;reseeded the bare patches", "Is it worth fighting, or should I give up on grass in the shade?|Should I keep trying, or accept that grass won't grow in shade?"),
    ("Toddler refuses vegetables|Toddler won't eat any vegetables", "Our daughter is two and used to eat everything.|Our two-year-old used to eat anything we gave her.", "Now she refuses every vegetable, even the ones she liked before.|These days she rejects all vegetables, even old favourites.", "hid vegetables in sauces;let her help cook;offered them first when she is hungry", "Is this just a phase, and what worked for your kids?|Is this a phase, and what helped with yours?"),
    ("Bike gears skipping|Gears slipping on my bike", "My {brand} road bike is {years} years old and the chain skips under hard pedalling.|On my {years}-year-old {brand} road bike the chain slips when I pedal hard.", "It happens mostly in the smaller rear cogs.|It is worst on the small sprockets at the back.", "adjusted the barrel adjuster;cleaned and oiled the chain;checked the derailleur hanger", "Do I need a new chain and cassette?|Is it time to replace the chain and cassette?"),
    ("Neighbour's tree blocking light|Neighbour's tree blocks all the light in my garden", "A large tree in my neighbour's garden shades most of my yard.|My neighbour has a huge tree that puts most of my garden in shade.", "Branches now hang over the fence and drop leaves into my gutters.|Its branches overhang the fence and fill my gutters with leaves.", "asked the neighbour politely;checked for a tree protection order;got a quote from a tree surgeon", "Am I allowed to cut the overhanging branches myself?|Can I legally trim the branches that hang over?"),
    ("Sudden drop in internet speed|Internet suddenly much slower", "We pay {brand} for 500 Mbps, but speed tests now show about 40.|Our {brand} plan is 500 Mbps, yet speed tests are only showing around 40.", "It started {weeks} weeks ago and happens on every device.|All devices are affected, and it began {weeks} weeks back.", "restarted the router;tested with a cable;called the provider", "How do I prove the problem is on their side?|How can I show the provider it is their fault?"),
    ("Squeaky floorboards|How to fix squeaky floorboards", "Our house is about 80 years old and the upstairs floorboards squeak loudly.|We live in an 80-year-old house with very creaky upstairs floors.", "The worst spot is right outside the baby's room.|The loudest board is just outside the nursery.", "sprinkled talcum powder between the boards;tried to find the joists;added a rug", "Can I fix it without lifting the carpet?|Is there a fix that doesn't involve pulling up the carpet?"),
    ("Passport renewal taking too long|Passport renewal delayed, any tips?", "I applied to renew my passport {weeks} weeks ago.|My passport renewal went in {weeks} weeks ago.", "My trip is in three weeks and the status has not changed.|I travel in three weeks and the status is still the same.", "called the helpline;checked the online tracker;sent all documents again", "Is it worth paying for the fast-track service now?|Should I pay for the urgent service at this point?"),
    ("Fridge not cooling but freezer works|Fridge warm, freezer still cold", "Our {brand} fridge freezer is {years} years old.|We have a {years}-year-old {brand} fridge freezer.", "The freezer is fine, but the fridge is at 12 degrees.|The freezer works, but the fridge section is sitting at 12 degrees.", "cleaned the coils at the back;checked the door seal;defrosted it for a day", "Is this the fan or the defrost system?|Could the fan be faulty, or is it the defrost system?"),
    ("Teenager gaming all night|Teenage son games until 3 a.m.", "Our son is fifteen and has started gaming until the early hours.|Our fifteen-year-old has begun playing games until the middle of the night.", "His grades are dropping and he is exhausted in the mornings.|He is tired every morning and his school marks are slipping.", "set screen time limits;took the console out of his room;talked to him about it", "How do other parents handle this without constant fights?|How do you manage this without arguing all the time?"),
    ("Orchid not flowering|Orchid won't flower again", "I was given an orchid {years} years ago; it flowered once and never again.|Someone gave me an orchid {years} years back, and it has only bloomed once.", "The leaves look healthy and it grows new roots.|It keeps making new roots, and the leaves are healthy.", "moved it to a brighter window;fed it orchid food;watered it less", "How do I get it to bloom again?|What makes an orchid flower a second time?"),
    ("Car makes grinding noise when braking|Grinding noise when I brake", "My {brand} saloon has done about 90,000 miles.|I drive a {brand} saloon with roughly 90,000 miles on it.", "Since last week there is a grinding sound every time I brake.|For the past week, braking has come with a grinding noise.", "checked the pads visually;washed the wheels;drove gently to see if it goes away", "Is it safe to drive until my garage appointment next week?|Can I keep driving until my garage visit next week?"),
    ("Noisy upstairs neighbours|Upstairs neighbours are very loud at night", "The people above us walk heavily and move furniture until after midnight.|Our upstairs neighbours stomp around and drag furniture past midnight.", "We have lived here {years} years and it started when they moved in.|It began when they arrived; we have been here {years} years.", "left a polite note;spoke to them in person;contacted the letting agent", "What else can we try before it turns into a formal complaint?|What should we try before making an official complaint?"),
    ("Ants in the kitchen|Ants in my kitchen every summer", "Every summer we get a trail of small ants across the kitchen worktop.|Each summer, tiny ants march across our kitchen counter.", "They seem to come from a gap under the window.|They appear to be coming in through a gap beneath the window.", "cleaned up all crumbs;used ant bait;sealed the gap with silicone", "What actually works long term?|What is a lasting solution?"),
    ("Acne in my thirties|Adult acne at 32, what helped you?", "I never had spots as a teenager, but now at 32 I get breakouts on my jaw.|I had clear skin as a teen, yet at 32 I am breaking out along my jaw.", "They have been getting worse for {weeks} weeks.|It has got worse over the last {weeks} weeks.", "switched to a gentle cleanser;changed my pillowcase more often;cut down on dairy", "Should I see a dermatologist, or try something else first?|Is it time for a dermatologist, or is there more to try?"),
    ("Kitchen tap low pressure|Low water pressure from kitchen tap only", "Only the kitchen tap has weak pressure; the bathroom is fine.|The bathroom taps are fine, but the kitchen tap barely runs.", "It got worse over {weeks} weeks.|The flow has dropped over {weeks} weeks.", "cleaned the aerator;checked the isolation valve under the sink;ran the hot and cold separately", "Could the cartridge be blocked?|Is the cartridge likely to be clogged?"),
    ("Stuck at intermediate Spanish|Learning Spanish but stuck at intermediate", "I have studied Spanish for {years} years and can read well.|I have been learning Spanish for {years} years and reading is fine.", "But I still cannot follow native speakers in conversation.|Still, I cannot keep up when native speakers talk.", "watched series with subtitles;used language apps daily;joined an online class", "What helped you finally understand spoken Spanish?|What made spoken Spanish click for you?"),
    ("Hedgehog in garden during the day|Hedgehog out in daylight, should I worry?", "I found a hedgehog wandering around my garden in the middle of the afternoon.|This afternoon a hedgehog was walking about in my garden in broad daylight.", "It looks small and seems a bit wobbly.|It is quite small and a little unsteady.", "put out a shallow dish of water;offered cat food;kept the dog inside", "Should I call a rescue, or leave it alone?|Do I contact a wildlife rescue or let it be?"),
    ("Kitten scratching furniture|Kitten scratches the sofa constantly", "Our kitten is four months old and keeps scratching the new sofa.|We have a four-month-old kitten who will not stop clawing our new sofa.", "She ignores the scratching post completely.|The scratching post gets no attention at all.", "put catnip on the post;moved the post next to the sofa;trimmed her claws", "How do I get her to use the post?|What will make her choose the post instead?"),
    ("Can't fall asleep|Lying awake for hours every night", "For {weeks} weeks I have been lying awake until 2 or 3 a.m.|For the past {weeks} weeks I have not been able to sleep before 2 or 3 a.m.", "I am tired all day but wide awake at night.|I feel exhausted in the day and alert at night.", "stopped coffee after noon;put my phone away an hour before bed;tried a meditation app", "What finally worked for you?|What helped you in the end?"),
    ("Basement floods every spring|Basement takes on water every spring", "Our house is {years} years old and the basement floods when the snow melts.|Every spring thaw, water gets into the basement of our {years}-year-old house.", "Water comes in where the floor meets the wall.|It seeps in at the joint between the floor and the wall.", "cleaned the gutters;extended the downspouts;sealed the cracks with epoxy", "Do we need a sump pump, or is there a cheaper fix?|Is a sump pump necessary, or can we do something cheaper?"),
    ("Old photos turning yellow|How to preserve old family photos", "I inherited boxes of family photos from the 1950s and 60s.|I have been given boxes of family pictures from the fifties and sixties.", "Many are yellowing and some are stuck together.|Lots are going yellow and a few have stuck together.", "moved them out of the attic;bought acid-free boxes;started scanning some", "What is the best way to store and digitise them?|How should I store and scan them?"),
    ("E-bike range much shorter than advertised|E-bike range much shorter than promised", "My {brand} e-bike is rated for 100 kilometres but I get about 45.|The {brand} e-bike claims 100 km of range, but I only manage around 45.", "I ride mostly in the highest assist mode on hilly roads.|Most of my riding is on hills, in the top assist level.", "kept the tyres fully pumped;charged the battery to full every night;updated the firmware", "Is this normal, or is the battery faulty?|Is that expected, or is something wrong with the battery?"),
)  # fmt: skip

SYNONYMS = {
    "almost": ("nearly",), "always": ("constantly",), "approved": ("backed",), "arrive": ("turn up",),
    "available": ("on offer",), "begin": ("start",), "big": ("large",), "bigger": ("larger",),
    "buy": ("purchase",), "cheap": ("inexpensive",), "closed": ("shut",), "completely": ("fully", "entirely"),
    "easily": ("readily",), "easy": ("simple", "effortless"), "exactly": ("precisely",),
    "expect": ("anticipate",), "gentle": ("mild",), "gently": ("softly", "carefully"), "happy": ("pleased",),
    "large": ("big",), "later": ("afterwards",), "local": ("nearby",), "mostly": ("largely", "chiefly"),
    "near": ("close to",), "need": ("require",), "often": ("frequently",), "perfect": ("ideal",),
    "plenty": ("lots",), "problem": ("issue",), "problems": ("issues",), "quick": ("fast", "speedy"),
    "quickly": ("rapidly", "swiftly"), "quiet": ("silent", "calm"), "really": ("truly",),
    "residents": ("locals", "inhabitants"), "said": ("stated",), "several": ("a number of",),
    "simple": ("easy",), "small": ("little", "tiny"), "soon": ("shortly",), "stay": ("remain",),
    "strong": ("powerful",), "suddenly": ("all of a sudden",), "tried": ("attempted",), "try": ("attempt",),
    "until": ("till",), "usually": ("normally", "typically"), "very": ("really", "extremely"),
    "warm": ("heated",), "whole": ("entire",),
}  # fmt: skip
"""Common words of the templates and synonyms that fit every sentence they appear in (checked in context:
"every", "new", "old", "fix", "start" and the like are left out, as "every few weeks", "new roofs", "five
years old", "fix the plate in place" and "start times" would break)."""

# ---------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Block:
    """A run of a page: prose sentences, list items (any order) or numbered steps (fixed order)."""

    lines: tuple[str, ...]
    style: str = "prose"  # "title", "prose", "list" or "steps"
    head: str = ""  # a heading that stays on top ("Ingredients:")

    def render(self) -> str:
        if self.style in ("title", "prose"):
            return " ".join(self.lines)
        if self.style == "list":
            items = [f"- {line}" for line in self.lines]
        else:
            items = [f"{i}. {line}" for i, line in enumerate(self.lines, 1)]
        return "\n".join([self.head, *items] if self.head else items)


def _render(blocks: Sequence[_Block]) -> str:
    return "\n".join(b.render() for b in blocks)


class _Writer:
    """Draws a page from two seeded streams: `plan` (what is said and how) and `entity` (names,
    places and numbers). A template duplicate redraws `entity` only; a synonym duplicate keeps both
    and moves every `say` to another phrasing, so the plan stream is consumed identically."""

    def __init__(self, plan_seed: int, entity_seed: int, rephrase_seed: int | None = None) -> None:
        self.plan = random.Random(plan_seed)
        self.entity = random.Random(entity_seed)
        self._rephrase = None if rephrase_seed is None else random.Random(rephrase_seed)

    def say(self, *phrasings: str) -> str:
        """One of several phrasings of the same thing ("a|b" inside a phrasing counts as two)."""
        options = [part for text in phrasings for part in text.split("|")]
        i = self.plan.randrange(len(options))
        if self._rephrase is not None and len(options) > 1:
            i = (i + 1 + self._rephrase.randrange(len(options) - 1)) % len(options)
        return options[i]

    def person(self) -> str:
        return f"{self.entity.choice(FIRST_NAMES)} {self.entity.choice(LAST_NAMES)}"


def _site(e: random.Random) -> str:
    """A made-up website name, as the page's header and footer carry it."""
    return e.choice(
        (
            f"{e.choice(FIRST_NAMES)}'s {e.choice(SITE_WORDS)}",
            f"The {e.choice(SITE_WORDS)} at {e.choice(TOWNS)}",
        )
    )


def _title(text: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))


def _product_page(w: _Writer, subject: tuple) -> list[_Block]:
    product, use, features, detail = subject
    e = w.entity
    brand, colour, town, name = e.choice(BRANDS), e.choice(COLOURS), e.choice(TOWNS), e.choice(FIRST_NAMES)
    model = f"{e.choice('ACKMQRSVXZ')}{e.randint(2, 9)}{e.choice(('00', '10', '50', '60'))}"
    price = f"{e.randint(24, 480)}.{e.choice(('00', '49', '95', '99'))}"
    rating, reviews, years, days = (
        f"4.{e.randint(1, 9)}",
        e.randint(18, 2400),
        e.randint(2, 5),
        e.randint(1, 4),
    )
    quote = w.plan.choice(REVIEWS)
    return [
        _Block(
            (w.say(f"{brand} {model} {_title(product)}", f"{_title(product)} by {brand}, model {model}"),),
            "title",
        ),
        _Block(
            (
                w.say(
                    f"The {brand} {model} is a {product} made for {use}.",
                    f"Meet the {model} from {brand}: a {product} designed with {use} in mind.",
                    f"Built for {use}, the {brand} {model} is a {product} that simply works.",
                ),
                w.say(detail),
                w.say(
                    f"Available in {colour} and two other finishes.",
                    f"Choose {colour} or one of two other finishes.",
                    f"It comes in {colour}, plus two more colour options.",
                ),
            )
        ),
        _Block(tuple(features.split(";")), "list", w.say("Key features:", "What you get:", "Highlights:")),
        _Block(
            (
                w.say(
                    f"Price: ${price}, with free delivery on orders over $50.",
                    f"It costs ${price}, and delivery is free when you spend more than $50.",
                    f"Yours for ${price}; orders above $50 ship at no charge.",
                ),
                w.say(
                    f"In stock and usually dispatched within {days} business days.",
                    f"We normally send it out within {days} working days.",
                    f"Expect it to leave our warehouse in {days} business days.",
                ),
                w.say(
                    "Not happy with it? Send it back within 30 days for a full refund.",
                    "If it is not right for you, return it within 30 days and get all your money back.",
                    "Returns are free for 30 days, no questions asked.",
                ),
            )
        ),
        _Block(
            (
                w.say(
                    f"Rated {rating} out of 5 by {reviews} customers.",
                    f"{reviews} shoppers give it an average of {rating} stars.",
                    f"Average customer rating: {rating}/5 from {reviews} reviews.",
                ),
                w.say(f'"{quote}" (review by {name} from {town})', f'{name} from {town} writes: "{quote}"'),
                w.say(
                    f"Every {product} is covered by a {years}-year warranty.",
                    f"{brand} backs it with a warranty of {years} years.",
                    f"The warranty lasts {years} years from the date of purchase.",
                ),
            )
        ),
    ]


def _news_page(w: _Writer, subject: tuple) -> list[_Block]:
    headline, what, impact, role, quote, then, (lo, hi) = subject
    e = w.entity
    facts = {
        "town": e.choice(TOWNS),
        "street": e.choice(STREETS),
        "day": e.choice(WEEKDAYS),
        "n": f"{e.randint(lo, hi):,}",
        "money": f"{e.randint(12, 95) / 10:.1f} million",
    }
    official, reporter, town = w.person(), w.person(), facts["town"]
    q = w.say(quote).format_map(facts)
    return [
        _Block((headline.format_map(facts),), "title"),
        _Block((w.say(f"By {reporter}, staff writer", f"Reporting by {reporter}"),), "title"),
        _Block((w.say(what).format_map(facts), w.say(impact).format_map(facts))),
        _Block(
            (
                w.say(
                    f'{official}, the {role} of {town}, said: "{q}."',
                    f'"{q}," {official}, {town}\'s {role}, told reporters.',
                    f'"{q}," said {official}, who serves as {town}\'s {role}.',
                ),
                w.say(then).format_map(facts),
                w.say(
                    "This story will be updated as more information becomes available.",
                    "We will update this article as we learn more.",
                    "Check back later for updates on this story.",
                ),
            )
        ),
    ]


def _recipe_page(w: _Writer, subject: tuple) -> list[_Block]:
    dish, minutes, degrees, description, ingredients, steps, tip = subject
    e = w.entity
    author, servings, prep = e.choice(FIRST_NAMES), e.randint(2, 8), e.choice((5, 10, 15, 20, 25))
    facts = {"cook": max(5, minutes + e.choice((-5, 0, 5, 10))), "temp": degrees + e.choice((-10, 0, 10))}
    rating, reviews, site = f"4.{e.randint(2, 9)}", e.randint(12, 900), _site(e)
    meta = [
        w.say(
            f"Serves {servings}. Prep {prep} minutes.",
            f"Makes {servings} servings, with {prep} minutes of prep.",
            f"Servings: {servings}. Preparation time: {prep} min.",
        ),
    ]
    if minutes:
        meta.append(w.say(f"Cooking time: {facts['cook']} minutes.", f"It cooks in {facts['cook']} minutes."))
    return [
        _Block(
            (
                w.say(
                    f"{_title(dish)} Recipe", f"How to Make {_title(dish)}", f"Easy Homemade {_title(dish)}"
                ),
            ),
            "title",
        ),
        _Block((w.say(f"From {site}, by {author}", f"Recipe by {author} at {site}"),), "title"),
        _Block(
            (
                w.say(description),
                w.say(
                    f"It has been a favourite in {author}'s kitchen for years.",
                    f"{author} has made it at home for years and still loves it.",
                    f"A family favourite from {author}, made again and again.",
                ),
                *meta,
            )
        ),
        _Block(
            tuple(ingredients.split(";")), "list", w.say("Ingredients:", "You will need:", "What you need:")
        ),
        _Block(
            tuple(w.say(s).format_map(facts) for s in steps.split(";")),
            "steps",
            w.say("Method:", "Instructions:", "Directions:"),
        ),
        _Block(
            (
                w.say(f"Tip: {w.say(tip)}", f"Cook's note: {w.say(tip)}"),
                w.say(
                    f"Rated {rating} out of 5 by {reviews} home cooks.",
                    f"{reviews} readers have rated it {rating}/5.",
                ),
            )
        ),
    ]


def _business_page(w: _Writer, subject: tuple) -> list[_Block]:
    kind, word, services, special = subject
    e = w.entity
    name = f"{w.plan.choice(SHOP_PREFIXES)} {word}"
    town, street, number, owner = e.choice(TOWNS), e.choice(STREETS), e.randint(2, 240), w.person()
    phone, year = f"({e.randint(201, 989)}) 555-{e.randint(1000, 9999)}", e.randint(1962, 2019)
    opens, closes = f"{e.choice((7, 8, 9))} a.m.", f"{e.choice((5, 6, 7))} p.m."
    return [
        _Block((w.say(f"{name}, your {kind} in {town}", f"{name}: {_title(kind)} in {town}"),), "title"),
        _Block(
            (
                w.say(
                    f"{name} has served {town} and the surrounding area since {year}.",
                    f"Since {year}, {name} has been the {kind} that {town} families trust.",
                    f"A locally owned {kind}, open in {town} since {year}.",
                ),
                w.say(special),
            )
        ),
        _Block(
            tuple(services.split(";")), "list", w.say("Our services:", "What we offer:", "Services include:")
        ),
        _Block(
            (
                w.say(
                    f"Find us at {number} {street}, {town}.",
                    f"Our address is {number} {street} in {town}.",
                    f"Visit us at {number} {street}, {town}.",
                ),
                w.say(
                    "Free parking is available behind the building.",
                    "There is free parking right behind our building.",
                    "Park for free in the lot at the back.",
                ),
                w.say(
                    f"Open Monday to Friday, {opens} to {closes}, and Saturday mornings.",
                    f"Our hours are {opens} to {closes} on weekdays, plus Saturday mornings.",
                    f"Weekdays {opens} until {closes}; Saturdays until noon.",
                ),
                w.say(
                    f"Call {phone} or book online.",
                    f"Phone us on {phone}, or make a booking on our website.",
                    f"To book, ring {phone} or use the online form.",
                ),
            )
        ),
        _Block(
            (
                w.say(
                    f"{owner}, the owner, and the whole team look forward to meeting you.",
                    f"Owner {owner} and the team can't wait to welcome you.",
                    f"The whole team, led by owner {owner}, hopes to see you soon.",
                ),
            )
        ),
    ]


def _howto_page(w: _Writer, subject: tuple) -> list[_Block]:
    task, why, tools, steps, warning = subject
    e = w.entity
    author, minutes, cost = w.person(), e.choice((10, 15, 20, 30, 45, 60)), e.randint(3, 60)
    month, year, site = e.choice(MONTHS), e.randint(2016, 2024), _site(e)
    return [
        _Block(
            (
                w.say(
                    f"How to {_title(task)}",
                    f"{_title(task)}: A Step-by-Step Guide",
                    f"A Beginner's Guide: How to {task}",
                ),
            ),
            "title",
        ),
        _Block((w.say(f"{site} guides", f"Home guides from {site}"),), "title"),
        _Block(
            (
                w.say(why),
                w.say(
                    f"Time needed: about {minutes} minutes.",
                    f"It takes roughly {minutes} minutes.",
                    f"Set aside around {minutes} minutes.",
                ),
                w.say(
                    f"Expect to spend about ${cost} on supplies.",
                    f"Supplies cost around ${cost}.",
                    f"Budget roughly ${cost} for materials.",
                ),
            )
        ),
        _Block(
            tuple(tools.split(";")), "list", w.say("What you need:", "Tools and materials:", "You will need:")
        ),
        _Block(
            tuple(w.say(s) for s in steps.split(";")),
            "steps",
            w.say("Steps:", "Instructions:", "How to do it:"),
        ),
        _Block(
            (
                w.say(f"Warning: {w.say(warning)}", f"Safety note: {w.say(warning)}"),
                w.say(
                    f"Written by {author} for {site}, updated {month} {year}.",
                    f"Guide by {author}, last reviewed in {month} {year}. More guides at {site}.",
                ),
            )
        ),
    ]


def _forum_page(w: _Writer, subject: tuple) -> list[_Block]:
    title, background, symptom, tried, question = subject
    e = w.entity
    facts = {"brand": e.choice(BRANDS), "years": e.randint(2, 9), "weeks": e.randint(2, 9)}
    user = f"{e.choice(FIRST_NAMES).lower()}_{e.choice(HANDLES)}{e.randint(2, 99)}"
    replies, views = e.randint(2, 48), e.randint(60, 4000)
    return [
        _Block((w.say(title),), "title"),
        _Block(
            (
                w.say(
                    f"Posted by {user}, {replies} replies, {views} views",
                    f"{user} started this thread ({replies} replies, {views} views)",
                ),
            ),
            "title",
        ),
        _Block(
            (
                w.say("Hi all,", "Hey everyone,", "Hello,"),
                w.say(background).format_map(facts),
                w.say(symptom).format_map(facts),
            )
        ),
        _Block(
            tuple(tried.split(";")),
            "list",
            w.say("What I have tried so far:", "Things I already tried:", "So far I have:"),
        ),
        _Block(
            (
                w.say(question),
                w.say(
                    "Thanks in advance for any help!",
                    "Any advice is appreciated, thanks.",
                    "Cheers, and thanks for reading.",
                ),
            )
        ),
    ]


TOPICS: dict[str, tuple[Callable[[_Writer, tuple], list[_Block]], tuple[tuple, ...]]] = {
    "product": (_product_page, PRODUCTS),
    "news": (_news_page, NEWS),
    "recipe": (_recipe_page, RECIPES),
    "business": (_business_page, BUSINESSES),
    "howto": (_howto_page, HOWTOS),
    "forum": (_forum_page, FORUM),
}

# ---------------------------------------------------------------------------------------------
# Duplicates
# ---------------------------------------------------------------------------------------------


def _reorder(blocks: list[_Block], rng: random.Random) -> list[_Block]:
    """Title lines first, then the other blocks shuffled, each shuffled inside unless numbered."""
    titles = [b for b in blocks if b.style == "title"]
    body = [b for b in blocks if b.style != "title"]
    for _ in range(100):
        order = rng.sample(body, len(body))
        out = titles + [
            b
            if b.style == "steps"
            else dataclasses.replace(b, lines=tuple(rng.sample(b.lines, len(b.lines))))
            for b in order
        ]
        if _render(out) != _render(blocks):
            return out
    raise ValueError("page has nothing to reorder")


_WORD = re.compile(r"(?<![\w'-])[a-z]+(?![\w'-])")  # whole words: not inside "year-old" or "don't"


def _swap_synonyms(text: str, rng: random.Random) -> str:
    """Each lower-case word found in SYNONYMS swapped, with probability SYNONYM_SWAP, for a synonym."""

    def swap(m: re.Match) -> str:
        options = SYNONYMS.get(m.group())
        if options is None or rng.random() >= SYNONYM_SWAP:
            return m.group()
        return rng.choice(options)

    return _WORD.sub(swap, text)


def _page(topic: str, subject: int, plan: int, entity: int, rephrase: int | None = None) -> list[_Block]:
    build, subjects = TOPICS[topic]
    return build(_Writer(plan, entity, rephrase), subjects[subject])


def paraphrase_corpus(groups_per_kind: int = 40, unrelated: int = 80, seed: int = 0) -> list[dict[str, str]]:
    """Records {id, text, group, kind, topic}: `groups_per_kind` originals for each duplicate kind,
    each followed (not necessarily next) by its duplicate, and `unrelated` documents; seeded.

    Topics take turns, and every original or unrelated document has a subject of its own, so at most
    `len(subjects)` per topic (40 each: 240 in all, the default).
    """
    rng = random.Random(seed)
    n_originals = groups_per_kind * len(DUPLICATE_KINDS)
    n_sources = n_originals + unrelated
    names = list(TOPICS)
    # Source i gets duplicate kind i % 4 and topic (i + i // 4) % 6: each kind cycles through all topics.
    topics = [names[(i + i // len(DUPLICATE_KINDS)) % len(names)] for i in range(n_sources)]
    picks = {}
    for t in names:
        n, have = topics.count(t), len(TOPICS[t][1])
        if n > have:
            raise ValueError(f"{n_sources} source documents need {n} {t} subjects, only {have} exist")
        picks[t] = iter(rng.sample(range(have), n))
    sources = [(t, next(picks[t])) for t in topics]

    docs: list[dict] = []
    for i, (topic, subject) in enumerate(sources):
        plan, entity = rng.getrandbits(64), rng.getrandbits(64)
        blocks = _page(topic, subject, plan, entity)
        text = _render(blocks)
        kind = DUPLICATE_KINDS[i % len(DUPLICATE_KINDS)] if i < n_originals else None
        source = {"text": text, "kind": "original" if kind else "unrelated", "topic": topic, "source": i}
        docs.append(source)
        if kind is None:
            continue
        own = random.Random(rng.getrandbits(64))  # the duplicate's own draws: other pages don't shift
        if kind == "copy":
            dup = text
        elif kind == "reorder":
            dup = _render(_reorder(blocks, own))
        elif kind == "synonym":
            dup = _swap_synonyms(_render(_page(topic, subject, plan, entity, own.getrandbits(64))), own)
        else:
            dup = text
            while dup == text:
                dup = _render(_page(topic, subject, plan, own.getrandbits(64)))
        docs.append({"text": dup, "kind": kind, "topic": topic, "source": i})

    # A seeded shuffle in which each original comes before its duplicate.
    rng.shuffle(docs)
    first: dict[int, int] = {}
    for pos, d in enumerate(docs):
        if d["source"] in first and d["kind"] == "original":
            j = first[d["source"]]
            docs[j], docs[pos] = docs[pos], docs[j]
        first.setdefault(d["source"], pos)
    group_of: dict[int, str] = {}
    records = []
    for pos, d in enumerate(docs):
        doc_id = f"page-{pos:04d}"
        group = group_of.setdefault(d["source"], doc_id)  # the original's id: it comes first
        records.append(
            {"id": doc_id, "text": d["text"], "group": group, "kind": d["kind"], "topic": d["topic"]}
        )
    return records
