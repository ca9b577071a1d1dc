"""Retrieval: chunk, embed, store in Qdrant, retrieve (and the langchain adapter)."""
