// placeholder: filled in by the norm_init work
