// placeholder: filled in by the activations work
