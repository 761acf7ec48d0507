"""The AgentAutoscaler controller's edges: the CRD, scale subresources, HPAs,
Events, metrics, leader election and the controller's small HTTP endpoint."""
