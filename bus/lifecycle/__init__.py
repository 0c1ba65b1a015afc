"""What happens to a document after delivery: deadlines, recalls, business statuses."""
