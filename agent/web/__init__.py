"""The read-only web dashboard (`finops serve` mounts it at ``/``): costs, AI unit economics, budgets,
findings, approvals and the audit trail, read through the product's own query functions."""

from agent.web.app import DashboardError, build_dashboard, check_exposure

__all__ = ["DashboardError", "build_dashboard", "check_exposure"]
