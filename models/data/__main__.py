"""`python -m models.data`: see `models.data.cli`."""

from models.data.cli import main

raise SystemExit(main())
