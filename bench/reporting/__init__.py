"""Reporting: REPORT.md, tables, plots, learning curves, answer samples, the regression gate."""
