"""gputrace: a trace compiler for NumPy-API array programs."""
