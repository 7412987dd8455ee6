"""`fte ui`: a local web console for runs, approvals, schedules and evals (see `server`)."""
