"""Issue 35: this machine's limits and each stage's distance from them; where `make bench`'s time goes."""
