"""Humans in the room: accounts, roles and permissions, join links, typed prompts, presence, mentions, audit."""
