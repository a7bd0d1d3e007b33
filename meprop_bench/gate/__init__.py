"""The regression gate: its inputs (benchmark JSON read into two sides), the verdict
(statistics applied per benchmark and across the run), and the A/B runner."""
