"""Model-in-the-loop curation: a language model scores documents through a prompt (`andes-data annotate`).

Llama 3 (Dubey et al. 2024, §3.1.1) trains its quality classifiers on labels from Llama 2;
FineWeb-Edu (Penedo et al. 2024, §4) on 0-5 educational scores from Llama-3-70B-Instruct. Here a
causal LM reads each document inside a prompt (prompt.py) and one forward pass gives its score
(scorer.py); the `llm_score` step (filters/llm.py) runs it over shards, and `train-classifier
--label-column llm_score --threshold 3` turns a scored sample into a classifier for the corpus.
"""
