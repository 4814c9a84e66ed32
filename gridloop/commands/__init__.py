"""The command side, written once: every command on a case takes one path (load → decide →
claim → publish → remember the answer), and one writer claims each case version."""

from gridloop.commands.head import Answer, Asked, Claim, Head, Heads, Publisher, Remembered
from gridloop.commands.path import CommandPath, Opening, Reaction

__all__ = [
    "Answer",
    "Asked",
    "Claim",
    "CommandPath",
    "Head",
    "Heads",
    "Opening",
    "Publisher",
    "Reaction",
    "Remembered",
]
