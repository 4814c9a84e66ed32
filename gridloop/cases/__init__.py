"""The case as the services see it: the view commands decide on (`view`), folded from the
case's events, and the typed read side of the projection (`reader`, `record`)."""

from gridloop.cases.view import CaseView, PendingRequest, evolve, fold

__all__ = ["CaseView", "PendingRequest", "evolve", "fold"]
