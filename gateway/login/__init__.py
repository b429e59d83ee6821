"""A login's arrival: the request checked at the edge, its apps cached, the verdict put into the contract."""
