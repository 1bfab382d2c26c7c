"""Front ends: Gradio chat UI and Slack bot (both call assistant.ask)."""
