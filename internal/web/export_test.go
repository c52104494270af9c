package web

// The dashboard's JSON types, for the external tests (package web_test) to
// decode it with what the server encodes it from, rather than a copy.
type (
	DashboardJSON = dashboardJSON
	RouteRow      = routeRow
)
