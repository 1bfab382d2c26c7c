"""Prompt templates shipped as package data (see assistant.prompts)."""
