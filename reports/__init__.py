"""Reports: build (pure, rows -> report model), render (HTML/Markdown/JSON), write."""
