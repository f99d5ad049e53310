"""The BGP injector: the autopilot consumer that applies overrides to the PoP routers
through ExaBGP and confirms them from the routers' own RIBs."""
