"""What the tools that use ``sam3_propose``'s model share: the proposer instance (handed over
by the registry, or built from the settings) and its fingerprint."""

from __future__ import annotations

from tools.base import Tool, ToolSettings
from tools.errors import ConfigError
from tools.sam3.propose import Sam3Propose


class UsesSam3Model:
    """A mixin for a :class:`tools.base.Tool` that runs on ``sam3_propose``'s model and encodings
    (put it first among the bases).

    Args:
        settings: the run's tool settings (the model is ``sam3_propose``'s).
        proposer: the ``sam3_propose`` instance whose model to use; the registry hands it over.
    """

    name: str
    settings: ToolSettings

    def __init__(self, settings: ToolSettings | None = None, *, proposer: Sam3Propose | None = None):
        super().__init__(settings)  # type: ignore[call-arg]  # the Tool after this mixin
        self._proposer = proposer

    def use_tools(self, tools: dict[str, Tool]) -> None:
        proposer = tools["sam3_propose"]
        if not isinstance(proposer, Sam3Propose):
            raise ConfigError(
                f"{self.name} needs SAM 3's model, but sam3_propose is a {type(proposer).__name__}"
            )
        self._proposer = proposer

    @property
    def proposer(self) -> Sam3Propose:
        if self._proposer is None:
            self._proposer = Sam3Propose(self.settings)
        return self._proposer

    def fingerprint(self) -> str:
        """``sam3_propose``'s: its weights and precision."""
        return self.proposer.fingerprint()
