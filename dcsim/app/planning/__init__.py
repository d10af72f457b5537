"""Planning: the search space of `dcsim plan`, its fast ranking model, and the search itself."""
