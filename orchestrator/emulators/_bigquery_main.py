"""Start bqemulator (PyPI) without DuckDB's spatial extension when it cannot be had.

bqemulator 1.4 refuses to start unless DuckDB can INSTALL the `spatial` extension, which it
downloads from the extension repository: impossible offline (CI here), and no PyPI wheel ships
it for DuckDB 2.0. Spatial backs only GEOGRAPHY functions, so this launcher tries it and, if it
cannot be loaded, starts without it (GEOGRAPHY queries then fail locally; nothing else does).
Run by the bqemulator venv's own interpreter, with bqemulator's CLI arguments.
"""

from __future__ import annotations

import sys


def main() -> None:
    from bqemulator import cli
    from bqemulator.storage import engine

    original = engine.DuckDBEngine._load_spatial

    def load_spatial(self: object) -> None:
        try:
            original(self)
        except Exception as e:  # offline: keep every non-GEOGRAPHY feature working
            print(
                f"kumoflow: DuckDB spatial unavailable, GEOGRAPHY disabled ({e})", file=sys.stderr
            )

    engine.DuckDBEngine._load_spatial = load_spatial
    cli.main()


if __name__ == "__main__":
    main()
