"""Where a backward's time goes: profiler events sorted into operator categories."""
