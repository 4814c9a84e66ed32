"""The workbench (工作台): the console in which the people who run the loop work — the
department's staff first (queue, acknowledge, handled, return). Server-rendered pages; every
action is the services' own API called with the person's session, so the console refuses
exactly what the API refuses."""
