"""Configuration state rebuilt from the configuration records of the log."""

from __future__ import annotations

from postbackd.eventlog import (
    AppConfig,
    AppConfigured,
    PartnerConfig,
    PartnerConfigured,
    PartnerRemoved,
    PostbackConfig,
    PostbackConfigured,
    PostbackRemoved,
    Record,
)


# Maximum entries of the targets_of cache. A full cache is emptied and filled again.
MAX_CACHED_TARGETS = 10_000


class ConfigState:
    """Apps, partners and postbacks as of some position in the log.

    Partners are keyed by ``(app_id, network)`` and postbacks by
    ``(app_id, network, event)``.
    """

    def __init__(self) -> None:
        self.apps: dict[str, AppConfig] = {}
        self.partners: dict[tuple[str, str], PartnerConfig] = {}
        self.postbacks: dict[tuple[str, str, str], PostbackConfig] = {}
        # Last log position that changed the configuration, 0 for none.
        self.seq = 0
        # partners_of results by app, dropped on every change; decisions ask per event.
        self._partners_by_app: dict[str, list[PartnerConfig]] = {}
        # targets_of results by (app, postback key), dropped on every change.
        self._targets: dict[tuple[str, str], list[tuple[PartnerConfig, PostbackConfig]]] = {}

    def copy(self) -> ConfigState:
        """Return an independent copy; the config structs themselves are immutable."""
        other = ConfigState()
        other.apps = dict(self.apps)
        other.partners = dict(self.partners)
        other.postbacks = dict(self.postbacks)
        other.seq = self.seq
        return other

    def apply(self, seq: int, record: Record) -> bool:
        """Apply ``record`` if it is a configuration record; return whether it was one."""
        match record:
            case AppConfigured(app=app):
                self.apps[app.app_id] = app
            case PartnerConfigured(partner=partner):
                self.partners[(partner.app_id, partner.network)] = partner
            case PartnerRemoved(app_id=app_id, network=network):
                self.partners.pop((app_id, network), None)
                for key in [k for k in self.postbacks if k[0] == app_id and k[1] == network]:
                    del self.postbacks[key]
            case PostbackConfigured(postback=postback):
                self.postbacks[(postback.app_id, postback.network, postback.event)] = postback
            case PostbackRemoved(app_id=app_id, network=network, event=event):
                self.postbacks.pop((app_id, network, event), None)
            case _:
                return False
        self.seq = seq
        self._partners_by_app = {}
        self._targets = {}
        return True

    def partners_of(self, app_id: str) -> list[PartnerConfig]:
        """Partners of an app, sorted by network. The list is shared: do not change it."""
        partners = self._partners_by_app.get(app_id)
        if partners is None:
            partners = sorted((p for (a, _), p in self.partners.items() if a == app_id), key=lambda p: p.network)
            self._partners_by_app[app_id] = partners
        return partners

    def targets_of(self, app_id: str, event: str) -> list[tuple[PartnerConfig, PostbackConfig]]:
        """Partners of an app that have a postback for ``event``, with that postback, sorted by network.

        The list is shared: do not change it.
        """
        key = (app_id, event)
        targets = self._targets.get(key)
        if targets is None:
            targets = []
            for partner in self.partners_of(app_id):
                postback = self.postbacks.get((app_id, partner.network, event))
                if postback is not None:
                    targets.append((partner, postback))
            if len(self._targets) >= MAX_CACHED_TARGETS:
                # Producers may send any number of event names, so the cache is bounded.
                self._targets = {}
            self._targets[key] = targets
        return targets

    def postback_for(self, app_id: str, network: str, event: str) -> PostbackConfig | None:
        return self.postbacks.get((app_id, network, event))

    def postbacks_of(self, app_id: str, network: str) -> list[PostbackConfig]:
        """Postbacks of one partner, the install postback first."""
        found = [p for (a, n, _), p in self.postbacks.items() if a == app_id and n == network]
        return sorted(found, key=lambda p: (p.event != "install", p.event))
