"""Actors: configuration state, per-device decisions and per-partner delivery."""

from postbackd.actors._config import ConfigState
from postbackd.actors._devices import DecisionEngine, DeviceState, postback_id_for
from postbackd.actors._rules import REASON_CODES, SESSION_BEGIN, SESSION_WINDOW
