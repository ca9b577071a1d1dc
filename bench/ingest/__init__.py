"""Ingest: stream a MediaWiki dump, clean the wikitext, write articles JSONL."""
