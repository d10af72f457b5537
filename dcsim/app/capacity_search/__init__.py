"""`dcsim capacity`: the smallest cluster that meets a service level for a demand, by fleet
simulation over cluster sizes (bisection on nodes) and seeds."""
