package testkit

import (
	"fmt"
	"math/rand/v2"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/policy"
)

// Population is a generated policy and the identities to try it with: the
// input of the tests that check every caller of the decision agrees.
type Population struct {
	// Routes: about one in eight public, one in eight open to any
	// authenticated user, the rest listing users, groups and domains. Route
	// i is named RouteName(i) and served at https://Host(i).
	Routes []policy.RouteSpec
	// IDs hold an email of IDs' own domains and a few groups each; they are
	// who the routes' allowed_users list.
	IDs []identity.Identity
}

// Host is where route i of a Population is served.
func Host(i int) string { return fmt.Sprintf("r%02d.example.com", i) }

// RouteName is the name of route i of a Population.
func RouteName(i int) string { return fmt.Sprintf("r%02d", i) }

// NewPopulation generates routes and ids, the same for the same seed.
func NewPopulation(routes, ids int, seed uint64) Population {
	rng := rand.New(rand.NewPCG(seed, seed+4))
	groups := []string{"engineering", "finance", "support", "sales", "ops"}
	domains := []string{"corp.example", "partner.example", "contractor.example"}
	pick := func(from []string, max int) []string {
		var out []string
		for _, v := range from {
			if rng.IntN(len(from)) < max {
				out = append(out, v)
			}
		}
		return out
	}
	emailOf := func(i int) string { return fmt.Sprintf("user%02d@%s", i, domains[i%len(domains)]) }
	var p Population
	for i := range routes {
		s := policy.RouteSpec{Name: RouteName(i), From: "https://" + Host(i)}
		switch rng.IntN(8) {
		case 0:
			s.AllowPublicUnauthenticatedAccess = true
		case 1:
			s.AllowAnyAuthenticatedUser = true
		default:
			for range rng.IntN(4) {
				s.AllowedUsers = append(s.AllowedUsers, emailOf(rng.IntN(ids)))
			}
			s.AllowedGroups = pick(groups, 2)
			s.AllowedDomains = pick(domains, 1)
		}
		p.Routes = append(p.Routes, s)
	}
	for i := range ids {
		p.IDs = append(p.IDs, identity.Identity{Email: emailOf(i), Groups: pick(groups, 2)})
	}
	return p
}

// Audience is every host of the population's routes, for tokens valid on all.
func (p Population) Audience() []string {
	out := make([]string, len(p.Routes))
	for i := range out {
		out[i] = Host(i)
	}
	return out
}
