"""The web rooms: the run viewer's pages and drawing, the stored-run routes of the FastAPI
router, its input model and Idempotency-Key handling, the static assets."""
