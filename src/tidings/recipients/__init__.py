"""People who receive messages: their addresses per channel, topics and preferences, quiet hours
(see ``docs/recipients.md``)."""
