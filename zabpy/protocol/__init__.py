"""Client connection protocol: framing, handshake, four-letter words (pure core)."""

from .connection import (FOUR_LETTER_WORDS, ClientConnection, Connect, FourLetterWord,
                         RemoteProtocolError, Request)

__all__ = ["FOUR_LETTER_WORDS", "ClientConnection", "Connect", "FourLetterWord",
           "RemoteProtocolError", "Request"]
