"""Quality classifiers (fastText or an embedding head): train from labelled Parquet, score, `classify`.

The fastText recipe is DCLM's (Li et al. 2024, "DataComp-LM", §4.4 and the `baselines/` code of
github.com/mlfoundations/dclm): a bag of word unigrams + bigrams fastText model trained with
`train_supervised` on balanced high-quality (`__label__hq`) and low-quality (`__label__cc`) documents,
whose probability of `hq` is the document's score; DCLM-Baseline keeps the top 10% of documents by it.
Llama 3 (Dubey et al. 2024, §3.1.1 "Model-based quality filtering") runs several such classifiers
(quality, code, math), each written to its own column by a `quality` step (filters/quality.py).

Llama 3 also runs DistilRoBERTa-style classifiers; the `embedding` kind trains a logistic-regression
or MLP head on a frozen text encoder's embeddings (all-MiniLM-L6-v2 by default), reusing those that
semantic dedup stored.

One module per idea: `examples` (labelled documents read, balanced, split: shared by both kinds),
`training` (fastText fit and record), `embedding_training` (embed, fit a head, record), `head` (the
head and its safetensors file), `metrics` (held-out precision, recall, F1, ROC AUC), `scoring`
(labels, fastText scores, a scorer for either kind, the top-fraction threshold), `embedding_scoring`
(the recorded encoder, checked, and the head), `embedding_reuse` (stored embeddings found by id) and
`stage` (`andes-data classify` over shards).
"""
