"""release.py's commands, one module each: `run(args, runner) -> exit code`, and the parser's help for it."""
