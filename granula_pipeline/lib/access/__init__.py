"""Who may use the API: the keys the operator made, their scopes and datasets."""
