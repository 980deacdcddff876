"""``from zuora.hook import ZuoraHook`` keeps working: the hook lives in ``zuora.api.hook``."""

from zuora.api.hook import WorkflowListing, ZuoraHook

__all__ = ["ZuoraHook", "WorkflowListing"]
