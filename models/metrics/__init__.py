"""Top-k ranking metrics and the offline evaluation protocol, shared by training (a stage's
validation) and evaluation (`models.evaluation`): a leaf package, importing no stage."""
