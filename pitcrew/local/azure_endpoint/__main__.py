"""`python -m pitcrew.local.azure_endpoint`: run the local Azure endpoint as a process."""

import sys

from pitcrew.local.azure_endpoint.server import main

sys.exit(main())
