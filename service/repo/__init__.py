"""Every query of the service lives here, one module per aggregate. Functions take a
session and never commit: the caller's unit of work does."""
