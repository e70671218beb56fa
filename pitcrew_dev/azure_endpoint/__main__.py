"""`python -m pitcrew_dev.azure_endpoint`: run the local Azure endpoint as a process."""

import sys

from pitcrew_dev.azure_endpoint.server import main

sys.exit(main())
