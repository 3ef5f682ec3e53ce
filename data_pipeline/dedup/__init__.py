"""De-duplication: removing repeated lines and documents from the corpus."""
