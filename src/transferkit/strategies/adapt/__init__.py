"""Domain adaptation: labelled data from one domain, a model for another (issue 18)."""
