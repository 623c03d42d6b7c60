// placeholder: filled in by the optim work
