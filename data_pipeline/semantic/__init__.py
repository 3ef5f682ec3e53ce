"""Semantic deduplication (SemDeDup) and embedding quality classifiers: text embeddings and their clusters.

SemDeDup (Abbas et al. 2023, "SemDeDup: Data-efficient learning at web-scale through semantic
deduplication") embeds every document with a pretrained encoder, clusters the embeddings with k-means
and, inside each cluster, drops documents whose cosine similarity to a kept one is above a threshold.
Near-duplicates in meaning that MinHash (data_pipeline/dedup/) misses, such as paraphrases and
templated pages, go this way.

One module per idea: `encoder` (load a Hugging Face encoder directory, embed texts exactly as
sentence-transformers would, but length-sorted and faster), `embed` (one Parquet shard of documents
to a Parquet shard of float16 embeddings that records which encoder made it), `kmeans` (spherical
k-means and nearest-centroid assignment) and `cluster` (which members of one cluster are removed).
"""
