"""Safety: the text pre-filter, language identification and the frame policy."""
