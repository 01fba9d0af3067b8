"""USE collectors: utilization, saturation and errors of resources, read at scrape time."""
