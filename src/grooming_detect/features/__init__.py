"""Features: the text views (author, conversation, author-in-conversation documents) and the
behavioural and lexicon-cue features built from the canonical tables."""
