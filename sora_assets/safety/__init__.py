"""Safety data that is not policy: the labelled prompt corpus generator, the public-figure names file
and the learned text classifier (built from the corpus's train split by `build_classifier`)."""
