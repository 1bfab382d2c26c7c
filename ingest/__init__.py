"""Ingestion: listing files -> parser -> Paper records -> chunks -> embeddings -> Chroma + BM25."""
