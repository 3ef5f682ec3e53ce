"""fastText quality classifiers: train from labelled Parquet, score documents, run the `classify` stage.

The recipe is DCLM's (Li et al. 2024, "DataComp-LM", §4.4 and the `baselines/` code of
github.com/mlfoundations/dclm): a bag of word unigrams + bigrams fastText model trained with
`train_supervised` on balanced high-quality (`__label__hq`) and low-quality (`__label__cc`) documents,
whose probability of `hq` is the document's score; DCLM-Baseline keeps the top 10% of documents by it.
Llama 3 (Dubey et al. 2024, §3.1.1 "Model-based quality filtering") runs several such classifiers
(quality, code, math), each written to its own column by a `quality` step (filters/quality.py).

One module per idea: `training` (training data, balanced split, fastText fit, training record),
`metrics` (held-out precision, recall, F1, ROC AUC), `scoring` (labels, loading a model, batch
scoring, the top-fraction threshold) and `stage` (`andes-data classify` over shards).
"""
