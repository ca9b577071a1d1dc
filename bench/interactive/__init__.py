"""Looking at answers: ``bench ask`` and ``bench chat``."""
