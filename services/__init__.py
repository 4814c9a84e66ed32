"""The gridloop services, one vertical slice each: a pure core and thin adapters."""
