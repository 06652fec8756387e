"""The argument parser of the `thermal-hf` subcommands (the recipe keys have their own, `thermal_hf.parser`).

As the recipe parser: no abbreviations (`--seed 2` is not `--seeds 2`, `--num_frame` not `--num_frames`), and an
unknown option names the closest valid ones.
"""

from __future__ import annotations

import argparse
import difflib
import re


class CommandParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            options = [o for o in self._option_string_actions if o.startswith("--")]
            hints = []
            for token in unknown[1].split():
                if token.startswith("--"):
                    close = difflib.get_close_matches(token.split("=", 1)[0].replace("-", "_").replace("__", "--", 1),
                                                      options, n=2, cutoff=0.6)
                    if close:
                        hints.append(f"{token}: did you mean {' or '.join(close)}?")
            if hints:
                message += " (" + "; ".join(hints) + ")"
        super().error(message)
