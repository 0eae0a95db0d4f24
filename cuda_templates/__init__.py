"""CUDA templates shipped as package data (``gputrace.cuda_templates``)."""
